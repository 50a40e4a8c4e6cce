#!/usr/bin/env bash
# Run a ptdm job with spark-submit: packages the code for the executors (--py-files), ships the
# Delta jars (--jars) unless you pass your own --jars/--packages, and points the driver at conf/.
#
#   scripts/submit.sh STAGE [spark-submit options] -- [job arguments]
#   scripts/submit.sh run --master spark://127.0.0.1:7077 -- hdfs:///landing/imgs --dataset photos --profile cluster
#
# STAGE is ingest | process | dedupe | curate | run. The driver runs here (client mode).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STAGE="${1:?usage: scripts/submit.sh STAGE [spark-submit options] -- [job arguments]}"; shift
case "$STAGE" in ingest|process|dedupe|curate|run) ;; *) echo "submit: unknown stage $STAGE" >&2; exit 2 ;; esac
SUBMIT_OPTS=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do SUBMIT_OPTS+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift

mkdir -p "$ROOT/dist"
ZIP="$ROOT/dist/ptdm_spark.zip"
rm -f "$ZIP"
(cd "$ROOT" && "$ROOT/.venv/bin/python" - "$ZIP" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for base, _, files in os.walk("ptdm_spark"):
        for f in files:
            if f.endswith(".py"):
                z.write(os.path.join(base, f))
PY
)
USER_JARS=0
for o in "${SUBMIT_OPTS[@]}"; do case "$o" in --jars|--packages|--jars=*|--packages=*) USER_JARS=1 ;; esac; done
JARS=()
if [ "$USER_JARS" = 0 ]; then
  JARS=(--jars "$(ls "$ROOT"/.jars/*.jar | paste -sd, -)")
fi
export PTDM_CONF_DIR="$ROOT/conf"
export PYSPARK_PYTHON="${PYSPARK_PYTHON:-$ROOT/.venv/bin/python}"
exec "$ROOT/.venv/bin/spark-submit" \
  --py-files "$ZIP" "${JARS[@]}" \
  --conf "spark.driver.extraJavaOptions=-Dlog4j2.configurationFile=file://$ROOT/conf/log4j2.properties" \
  "${SUBMIT_OPTS[@]}" \
  "$ROOT/jobs/$STAGE.py" "$@"
