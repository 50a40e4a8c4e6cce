#!/usr/bin/env bash
# A real HDFS on this machine: one NameNode and two DataNodes as separate JVMs on loopback,
# WebHDFS on, replication 2. Hadoop's own jars come from Maven Central (the version of the
# Hadoop client bundled in the pinned pyspark) into .hadoop/lib (git-ignored).
#
#   scripts/hdfs.sh start     # format (first time), start, wait until both DataNodes are live
#   scripts/hdfs.sh stop      # stop all three daemons
#   scripts/hdfs.sh status    # live DataNodes, or "not running"
#   scripts/hdfs.sh stop-datanode N | start-datanode N    # N = 1 or 2 (fault tests)
#
# Data, config, logs and pids live under $PTDM_HDFS_DIR (default /tmp/ptdm-hdfs).
# Ports: NameNode RPC $PTDM_HDFS_PORT (9000), HTTP/WebHDFS 9870; DataNode i: 98i6/98i4/98i7.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${PTDM_HDFS_DIR:-/tmp/ptdm-hdfs}"
PORT="${PTDM_HDFS_PORT:-9000}"
HTTP=9870
LIB="$ROOT/.hadoop/lib"
die() { echo "hdfs: $*" >&2; exit 1; }

hadoop_version() {
  ls "$ROOT"/.venv/lib/python*/site-packages/pyspark/jars/hadoop-client-api-*.jar 2>/dev/null \
    | sed -E 's/.*hadoop-client-api-(.*)\.jar/\1/' | head -1
}

fetch() {
  local v; v="$(hadoop_version)"
  [ -n "$v" ] || die "pyspark is not installed in .venv: run scripts/setup.sh first"
  if [ "$(cat "$ROOT/.hadoop/.version" 2>/dev/null)" = "$v" ]; then return; fi
  command -v mvn >/dev/null || die "mvn not found: install Maven"
  echo "hdfs: fetching Hadoop $v (hadoop-hdfs, hadoop-hdfs-client, hadoop-common) from Maven Central into .hadoop/lib"
  rm -rf "$ROOT/.hadoop" && mkdir -p "$ROOT/.hadoop"
  cat > "$ROOT/.hadoop/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ptdm</groupId><artifactId>ptdm-hadoop</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-hdfs</artifactId><version>$v</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-common</artifactId><version>$v</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-hdfs-client</artifactId><version>$v</version></dependency>
  </dependencies>
</project>
POM
  mvn -q -B -f "$ROOT/.hadoop/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB" \
    || die "Maven could not fetch Hadoop $v"
  echo "$v" > "$ROOT/.hadoop/.version"
}

prop() { echo "  <property><name>$1</name><value>$2</value></property>"; }

write_conf() {  # write_conf DIR [datanode index]
  local dir="$1" i="${2:-0}"
  mkdir -p "$dir"
  { echo "<configuration>"; prop fs.defaultFS "hdfs://127.0.0.1:$PORT"; prop hadoop.tmp.dir "$RUN/tmp"; echo "</configuration>"; } > "$dir/core-site.xml"
  {
    echo "<configuration>"
    prop dfs.replication 2
    prop dfs.webhdfs.enabled true
    prop dfs.permissions.enabled false
    prop dfs.namenode.name.dir "$RUN/name"
    prop dfs.namenode.rpc-address "127.0.0.1:$PORT"
    prop dfs.namenode.http-address "127.0.0.1:$HTTP"
    prop dfs.namenode.datanode.registration.ip-hostname-check false
    prop dfs.namenode.safemode.extension 0
    prop dfs.namenode.heartbeat.recheck-interval 5000
    prop dfs.heartbeat.interval 1
    prop dfs.client.use.datanode.hostname false
    if [ "$i" -gt 0 ]; then
      prop dfs.datanode.data.dir "$RUN/data$i"
      prop dfs.datanode.address "127.0.0.1:98${i}6"
      prop dfs.datanode.http.address "127.0.0.1:98${i}4"
      prop dfs.datanode.ipc.address "127.0.0.1:98${i}7"
      prop dfs.datanode.hostname 127.0.0.1
    fi
    echo "</configuration>"
  } > "$dir/hdfs-site.xml"
  cat > "$dir/log4j.properties" <<'LOG'
log4j.rootLogger=INFO,file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=${hadoop.log.file}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=%d{ISO8601} %p %c{2}: %m%n
LOG
}

daemon() {  # daemon NAME CONFDIR CLASS
  local name="$1" conf="$2" cls="$3"
  mkdir -p "$RUN/logs"
  nohup java -Xmx512m -Dhadoop.log.file="$RUN/logs/$name.log" -Dlog4j.configuration="file:$conf/log4j.properties" \
    -cp "$conf:$RUN/web:$LIB/*" "$cls" > "$RUN/logs/$name.out" 2>&1 &
  echo $! > "$RUN/$name.pid"
}

live_datanodes() {
  "$ROOT/.venv/bin/python" - "$HTTP" <<'PY' 2>/dev/null || echo -1
import json, sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/jmx?qry=Hadoop:service=NameNode,name=FSNamesystemState"
with urllib.request.urlopen(url, timeout=2) as r:
    bean = json.load(r)["beans"][0]
safe = "ON" if "Safe mode is ON" in (bean.get("FSState", "") + json.dumps(bean)) else "OFF"
print(bean["NumLiveDataNodes"] if bean.get("FSState") == "Operational" else -1)
PY
}

wait_ready() {
  local want="$1"
  for _ in $(seq 1 120); do
    if [ "$(live_datanodes)" -ge "$want" ] 2>/dev/null; then
      if java -cp "$RUN/conf:$LIB/*" org.apache.hadoop.hdfs.tools.DFSAdmin -safemode get 2>/dev/null | grep -q OFF; then
        return 0
      fi
    fi
    sleep 1
  done
  die "HDFS did not become ready in 120 s (logs: $RUN/logs)"
}

stop_pid() {
  local f="$RUN/$1.pid"
  [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

case "${1:-}" in
  start)
    command -v java >/dev/null || die "java not found"
    fetch
    if [ -f "$RUN/namenode.pid" ] && kill -0 "$(cat "$RUN/namenode.pid")" 2>/dev/null; then
      echo "hdfs: already running (hdfs://127.0.0.1:$PORT)"; exit 0
    fi
    mkdir -p "$RUN"
    write_conf "$RUN/conf"
    # The Maven jars carry no webapps/ folders (the Hadoop tarball ships them beside the jars);
    # the daemons' HTTP servers only need them to exist: WebHDFS is registered in code.
    for w in hdfs datanode secondary static; do mkdir -p "$RUN/web/webapps/$w"; touch "$RUN/web/webapps/$w/.keep"; done
    for i in 1 2; do write_conf "$RUN/conf-dn$i" "$i"; done
    if [ ! -d "$RUN/name/current" ]; then
      java -cp "$RUN/conf:$LIB/*" org.apache.hadoop.hdfs.server.namenode.NameNode -format -force -nonInteractive \
        > "$RUN/format.log" 2>&1 || die "NameNode format failed (see $RUN/format.log)"
    fi
    daemon namenode "$RUN/conf" org.apache.hadoop.hdfs.server.namenode.NameNode
    for i in 1 2; do daemon "datanode$i" "$RUN/conf-dn$i" org.apache.hadoop.hdfs.server.datanode.DataNode; done
    wait_ready 2
    echo "hdfs: ready at hdfs://127.0.0.1:$PORT (WebHDFS http://127.0.0.1:$HTTP), 2 DataNodes, data in $RUN"
    ;;
  stop)
    for n in datanode1 datanode2 namenode; do stop_pid "$n"; done
    echo "hdfs: stopped"
    ;;
  stop-datanode) stop_pid "datanode${2:?N}" ;;
  start-datanode) daemon "datanode${2:?N}" "$RUN/conf-dn$2" org.apache.hadoop.hdfs.server.datanode.DataNode ;;
  status)
    n="$(live_datanodes)"
    if [ "$n" -ge 0 ] 2>/dev/null; then echo "hdfs: running, $n live DataNodes"; else echo "hdfs: not running"; exit 3; fi
    ;;
  *) echo "usage: scripts/hdfs.sh start|stop|status|stop-datanode N|start-datanode N" >&2; exit 2 ;;
esac
