#!/usr/bin/env bash
# A real HDFS on this machine: one NameNode and two DataNodes as separate JVMs on loopback,
# WebHDFS on, replication 2, and a Hadoop KMS beside them (the key server of HDFS encryption
# zones). Hadoop's own jars come from Maven Central (the version of the Hadoop client bundled in
# the pinned pyspark) into .hadoop/lib; the KMS's (hadoop-kms, the newest release not newer than
# that client: 3.5.0 is not published, so 3.4.3 for Hadoop 3.5) into .hadoop/kms/lib (git-ignored).
#
#   scripts/hdfs.sh start     # format (first time), start the KMS and HDFS, wait until both DataNodes are live
#   scripts/hdfs.sh stop      # stop all four daemons
#   scripts/hdfs.sh status    # live DataNodes, or "not running"
#   scripts/hdfs.sh stop-datanode N | start-datanode N    # N = 1 or 2 (fault tests)
#   scripts/hdfs.sh zone PATH [KEY]   # make the HDFS folder PATH an encryption zone under the KMS
#                                     # key KEY (default ptdm; created when missing); PATH must be
#                                     # missing or empty; a PATH that already is a zone is left as it is
#   scripts/hdfs.sh fsck PATH         # Hadoop's fsck of PATH: its files and their block ids
#
# Data, config, logs and pids live under $PTDM_HDFS_DIR (default /tmp/ptdm-hdfs).
# Ports (all on 127.0.0.1): NameNode RPC $PTDM_HDFS_PORT (9000), HTTP/WebHDFS $PTDM_HDFS_HTTP_PORT
# (9870); DataNode i: <P>i6 (data), <P>i4 (HTTP), <P>i7 (IPC) with <P> = $PTDM_HDFS_DN_PREFIX (98);
# KMS $PTDM_KMS_PORT (9600). Set them to run a second HDFS beside another one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${PTDM_HDFS_DIR:-/tmp/ptdm-hdfs}"
PORT="${PTDM_HDFS_PORT:-9000}"
HTTP="${PTDM_HDFS_HTTP_PORT:-9870}"
DNP="${PTDM_HDFS_DN_PREFIX:-98}"
KMS_PORT="${PTDM_KMS_PORT:-9600}"
KMS_URI="kms://http@127.0.0.1:$KMS_PORT/kms"
LIB="$ROOT/.hadoop/lib"
KMS_LIB="$ROOT/.hadoop/kms/lib"
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

kms_version() {  # hadoop-kms is published up to 3.4.x: the client's own version, else the newest 3.4
  case "$1" in 3.5.*|3.6.*) echo 3.4.3 ;; *) echo "$1" ;; esac
}

fetch_kms() {
  local kv; kv="$(kms_version "$(hadoop_version)")"
  if [ "$(cat "$ROOT/.hadoop/kms/.version" 2>/dev/null)" = "$kv" ]; then return; fi
  echo "hdfs: fetching the Hadoop KMS $kv (hadoop-kms) from Maven Central into .hadoop/kms/lib"
  rm -rf "$ROOT/.hadoop/kms" && mkdir -p "$ROOT/.hadoop/kms"
  cat > "$ROOT/.hadoop/kms/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ptdm</groupId><artifactId>ptdm-hadoop-kms</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-kms</artifactId><version>$kv</version></dependency>
  </dependencies>
</project>
POM
  mvn -q -B -f "$ROOT/.hadoop/kms/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KMS_LIB" \
    || die "Maven could not fetch hadoop-kms $kv"
  echo "$kv" > "$ROOT/.hadoop/kms/.version"
}

prop() { echo "  <property><name>$1</name><value>$2</value></property>"; }

write_conf() {  # write_conf DIR [datanode index]
  local dir="$1" i="${2:-0}"
  mkdir -p "$dir"
  # The NameNode hands the KMS address to every client (Hadoop 3 clients take it from the server
  # defaults), so Spark, WebHDFS and the DataNodes need no setting of their own to read a zone.
  { echo "<configuration>"; prop fs.defaultFS "hdfs://127.0.0.1:$PORT"; prop hadoop.tmp.dir "$RUN/tmp"
    prop hadoop.security.key.provider.path "$KMS_URI"; echo "</configuration>"; } > "$dir/core-site.xml"
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
      prop dfs.datanode.address "127.0.0.1:${DNP}${i}6"
      prop dfs.datanode.http.address "127.0.0.1:${DNP}${i}4"
      prop dfs.datanode.ipc.address "127.0.0.1:${DNP}${i}7"
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

write_kms_conf() {  # the KMS's keys live in a Java keystore under $RUN/kms, its password in the conf dir
  local dir="$RUN/kms-conf"
  mkdir -p "$dir" "$RUN/kms"
  { echo "<configuration>"; prop hadoop.tmp.dir "$RUN/tmp"; echo "</configuration>"; } > "$dir/core-site.xml"
  {
    echo "<configuration>"
    prop hadoop.kms.key.provider.uri "jceks://file@$RUN/kms/kms.keystore"
    prop hadoop.security.keystore.java-keystore-provider.password-file kms.keystore.password
    prop hadoop.kms.http.host 127.0.0.1
    prop hadoop.kms.http.port "$KMS_PORT"
    echo "</configuration>"
  } > "$dir/kms-site.xml"
  # Simple authentication on loopback; every user may use every key (a test cluster's ACLs).
  {
    echo "<configuration>"
    for op in MANAGEMENT GENERATE_EEK DECRYPT_EEK READ; do prop "default.key.acl.$op" '*'; done
    echo "</configuration>"
  } > "$dir/kms-acls.xml"
  if [ ! -s "$dir/kms.keystore.password" ]; then
    (umask 077; head -c 24 /dev/urandom | base64 | tr -d '\n' > "$dir/kms.keystore.password")
  fi
  sed -e "s#\${hadoop.log.file}#$RUN/logs/kms.log#" "$RUN/conf/log4j.properties" > "$dir/kms-log4j.properties"
}

kms_ready() {
  "$ROOT/.venv/bin/python" - "$KMS_PORT" <<'PY' >/dev/null 2>&1
import getpass, sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/kms/v1/keys/names?user.name={getpass.getuser()}", timeout=2)
PY
}

start_kms() {
  if kms_ready; then return; fi
  write_kms_conf
  mkdir -p "$RUN/logs"
  # hadoop-kms 3.4 on Java 17 needs these packages opened (Jersey and Jetty reflect into them).
  local opens=""
  for p in java.lang java.lang.reflect java.util java.io java.net sun.nio.ch; do opens="$opens --add-opens=java.base/$p=ALL-UNNAMED"; done
  # shellcheck disable=SC2086
  nohup java -Xmx256m $opens -Dkms.config.dir="$RUN/kms-conf" -Dkms.log.dir="$RUN/logs" \
    -Dlog4j.configuration="file:$RUN/kms-conf/kms-log4j.properties" \
    -cp "$RUN/kms-conf:$KMS_LIB/*" org.apache.hadoop.crypto.key.kms.server.KMSWebServer > "$RUN/logs/kms.out" 2>&1 &
  echo $! > "$RUN/kms.pid"
  for _ in $(seq 1 60); do
    if kms_ready; then return; fi
    kill -0 "$(cat "$RUN/kms.pid")" 2>/dev/null || die "the KMS exited at start (logs: $RUN/logs/kms.out, kms.log)"
    sleep 1
  done
  die "the KMS did not answer on 127.0.0.1:$KMS_PORT in 60 s (logs: $RUN/logs/kms.out)"
}

hadoop_cls() {  # hadoop_cls CLASS ARGS...: a Hadoop command-line tool as the daemons' client
  java -Dhadoop.log.file="$RUN/logs/client.log" -cp "$RUN/conf:$LIB/*" "$@"
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
    fetch_kms
    if [ -f "$RUN/namenode.pid" ] && kill -0 "$(cat "$RUN/namenode.pid")" 2>/dev/null; then
      grep -q hadoop.security.key.provider.path "$RUN/conf/core-site.xml" 2>/dev/null \
        || die "an HDFS started by an older scripts/hdfs.sh (no KMS) runs: scripts/hdfs.sh stop, then start"
      start_kms  # a KMS that died is started again; the NameNode finds it at its address
      echo "hdfs: already running (hdfs://127.0.0.1:$PORT, KMS $KMS_URI)"; exit 0
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
    start_kms
    daemon namenode "$RUN/conf" org.apache.hadoop.hdfs.server.namenode.NameNode
    for i in 1 2; do daemon "datanode$i" "$RUN/conf-dn$i" org.apache.hadoop.hdfs.server.datanode.DataNode; done
    wait_ready 2
    echo "hdfs: ready at hdfs://127.0.0.1:$PORT (WebHDFS http://127.0.0.1:$HTTP), 2 DataNodes, data in $RUN"
    ;;
  stop)
    for n in datanode1 datanode2 namenode kms; do stop_pid "$n"; done
    echo "hdfs: stopped"
    ;;
  stop-datanode) stop_pid "datanode${2:?N}" ;;
  start-datanode) daemon "datanode${2:?N}" "$RUN/conf-dn$2" org.apache.hadoop.hdfs.server.datanode.DataNode ;;
  status)
    n="$(live_datanodes)"
    kms="KMS not answering on 127.0.0.1:$KMS_PORT"; if kms_ready; then kms="KMS at $KMS_URI"; fi
    if [ "$n" -ge 0 ] 2>/dev/null; then echo "hdfs: running, $n live DataNodes, $kms"; else echo "hdfs: not running"; exit 3; fi
    ;;
  zone)
    path="${2:?usage: scripts/hdfs.sh zone PATH [KEY]}"; key="${3:-ptdm}"
    case "$path" in hdfs://*) path="/${path#hdfs://*/}" ;; esac
    [ "$path" = "/" ] || path="${path%/}"
    [ "$(live_datanodes)" -ge 0 ] 2>/dev/null || die "HDFS is not running: scripts/hdfs.sh start"
    has="$(hadoop_cls org.apache.hadoop.hdfs.tools.CryptoAdmin -listZones 2>/dev/null | awk -v p="$path" '$1 == p {print $2}')"
    if [ -n "$has" ]; then
      [ "$has" = "$key" ] || die "$path is already an encryption zone, under the key '$has' (not '$key')"
      echo "hdfs: $path is already an encryption zone (key '$key')"; exit 0
    fi
    if ! hadoop_cls org.apache.hadoop.crypto.key.KeyShell list -provider "$KMS_URI" 2>/dev/null | grep -qx "$key"; then
      hadoop_cls org.apache.hadoop.crypto.key.KeyShell create "$key" -provider "$KMS_URI" >/dev/null 2>"$RUN/logs/zone.err" \
        || die "could not create the key '$key' in the KMS at $KMS_URI (see $RUN/logs/zone.err)"
    fi
    hadoop_cls org.apache.hadoop.fs.FsShell -mkdir -p "$path" 2>"$RUN/logs/zone.err" || die "could not create $path (see $RUN/logs/zone.err)"
    hadoop_cls org.apache.hadoop.hdfs.tools.CryptoAdmin -createZone -keyName "$key" -path "$path" >/dev/null 2>"$RUN/logs/zone.err" \
      || die "could not make $path an encryption zone: $(grep -m1 -v '^[[:space:]]*at ' "$RUN/logs/zone.err")"
    echo "hdfs: hdfs://127.0.0.1:$PORT$path is an encryption zone (key '$key', KMS $KMS_URI)"
    ;;
  fsck) hadoop_cls org.apache.hadoop.hdfs.tools.DFSck "${2:?usage: scripts/hdfs.sh fsck PATH}" -files -blocks 2>/dev/null ;;
  *) echo "usage: scripts/hdfs.sh start|stop|status|zone PATH [KEY]|fsck PATH|stop-datanode N|start-datanode N" >&2; exit 2 ;;
esac
