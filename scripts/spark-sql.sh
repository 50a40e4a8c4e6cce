#!/usr/bin/env bash
# spark-sql over ptdm's catalog: the same Delta jars, extension and metastore as `ptdm`.
#   scripts/spark-sql.sh -e "SELECT label, count(*) FROM fashion.curated GROUP BY label"
#   scripts/spark-sql.sh --set lakehouse.root=/data/lh -e "SHOW TABLES IN fashion"
# ptdm options (--profile, --conf, --set) come first; everything else goes to spark-sql.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PTDM_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile|--conf|--set) PTDM_ARGS+=("$1" "$2"); shift 2 ;;
    *) break ;;
  esac
done
PROPS="$(mktemp)"
INIT="$(mktemp)"
trap 'rm -f "$PROPS" "$INIT"' EXIT
"$ROOT/.venv/bin/ptdm" spark-conf "${PTDM_ARGS[@]}" > "$PROPS"
"$ROOT/.venv/bin/ptdm" spark-conf --functions > "$INIT"   # hamming(a, b) and friends
export SPARK_HOME="${SPARK_HOME:-$("$ROOT/.venv/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
"$ROOT/.venv/bin/spark-sql" --properties-file "$PROPS" -i "$INIT" -S "$@"
