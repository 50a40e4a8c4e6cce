#!/usr/bin/env bash
# A real Spark standalone cluster on loopback from the installed pyspark (spark-class): one
# master and two workers with one core each.
#
#   scripts/spark-cluster.sh start     # start and wait until both workers are registered
#   scripts/spark-cluster.sh stop
#   scripts/spark-cluster.sh status
#   scripts/spark-cluster.sh kill-worker N    # N = 1 or 2 (fault tests): SIGKILL, no goodbye
#
# Master: spark://127.0.0.1:7077 (UI 8080); workers' UIs 8081, 8082. State under
# $PTDM_SPARK_DIR (default /tmp/ptdm-spark).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${PTDM_SPARK_DIR:-/tmp/ptdm-spark}"
PY="$ROOT/.venv/bin/python"
die() { echo "spark-cluster: $*" >&2; exit 1; }
[ -x "$PY" ] || die "no .venv: run scripts/setup.sh first"
export SPARK_HOME="${SPARK_HOME:-$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
export PYSPARK_PYTHON="$PY"
export SPARK_LOCAL_IP=127.0.0.1
CLASS="$SPARK_HOME/bin/spark-class"

alive_workers() {
  "$PY" - <<'PY' 2>/dev/null || echo -1
import json, urllib.request
with urllib.request.urlopen("http://127.0.0.1:8080/json/", timeout=2) as r:
    print(sum(1 for w in json.load(r).get("workers", []) if w.get("state") == "ALIVE"))
PY
}

start_proc() {  # start_proc NAME ARGS...
  local name="$1"; shift
  mkdir -p "$RUN/logs"
  nohup "$CLASS" "$@" > "$RUN/logs/$name.log" 2>&1 &
  echo $! > "$RUN/$name.pid"
}

stop_proc() {  # stop_proc NAME [SIGNAL]
  local f="$RUN/$1.pid" sig="${2:-TERM}"
  [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  # spark-class execs java; kill the whole group of that pid's children too
  pkill -"$sig" -P "$pid" 2>/dev/null || true
  kill -"$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

case "${1:-}" in
  start)
    if [ "$(alive_workers)" -ge 2 ] 2>/dev/null; then echo "spark-cluster: already running"; exit 0; fi
    mkdir -p "$RUN"
    start_proc master org.apache.spark.deploy.master.Master --host 127.0.0.1 --port 7077 --webui-port 8080
    for i in 1 2; do
      mkdir -p "$RUN/work$i"
      start_proc "worker$i" org.apache.spark.deploy.worker.Worker spark://127.0.0.1:7077 --host 127.0.0.1 \
        --cores 1 --memory 3g --webui-port "808$i" --work-dir "$RUN/work$i"
    done
    for _ in $(seq 1 90); do
      if [ "$(alive_workers)" -ge 2 ] 2>/dev/null; then
        echo "spark-cluster: ready at spark://127.0.0.1:7077 with 2 workers (1 core each)"; exit 0
      fi
      sleep 1
    done
    die "the cluster did not come up in 90 s (logs: $RUN/logs)"
    ;;
  stop)
    for n in worker1 worker2 master; do stop_proc "$n"; done
    echo "spark-cluster: stopped"
    ;;
  kill-worker) stop_proc "worker${2:?N}" KILL ;;
  status)
    n="$(alive_workers)"
    if [ "$n" -ge 0 ] 2>/dev/null; then echo "spark-cluster: running, $n alive workers"; else echo "spark-cluster: not running"; exit 3; fi
    ;;
  *) echo "usage: scripts/spark-cluster.sh start|stop|status|kill-worker N" >&2; exit 2 ;;
esac
