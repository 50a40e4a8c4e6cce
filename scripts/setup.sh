#!/usr/bin/env bash
# One-command set-up of ptdm-spark on a new machine.
#
#   scripts/setup.sh            # or: make setup
#
# 1. checks python3 (>= 3.10), java (>= 17) and mvn, and stops with one line if one is missing;
# 2. creates .venv and installs the package with its dev extras (pins: setup.py);
# 3. fetches the Delta Lake jars for the pinned Spark minor version from Maven Central into .jars/
#    (git-ignored), so that no Spark session ever downloads anything at start;
# 4. installs Debian's dataset-fashion-mnist (the README's main command) when it is missing and
#    apt is available.
# A rerun with nothing changed takes a few seconds and changes nothing (stamp files in .venv/ and
# .jars/ record what was done).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"

die() { echo "setup: $*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "python3 not found: install Python 3.10 or newer"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "Python $("$PY" -c 'import platform; print(platform.python_version())') is too old: need 3.10 or newer"
command -v java >/dev/null || die "java not found: install a JDK 17 or newer (Debian: apt-get install openjdk-17-jdk-headless)"
JAVA_MAJOR="$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1)"
[ "${JAVA_MAJOR:-0}" -ge 17 ] || die "java ${JAVA_MAJOR:-?} is too old: Spark 4 needs Java 17 or newer"
command -v mvn >/dev/null || die "mvn not found: install Maven (Debian: apt-get install maven); it fetches the Delta jars"

# --- 2. virtualenv + package -------------------------------------------------------------------
STAMP=".venv/.ptdm-installed"
WANT="$(cat setup.py | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "setup: installing ptdm-spark and its pinned dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$WANT" > "$STAMP"
else
  echo "setup: .venv is up to date"
fi

# --- 3. Delta jars -----------------------------------------------------------------------------
read -r SPARK_MM DELTA_VERSION SPARK_JARS < <(.venv/bin/python - <<'PY'
import importlib.metadata as md, os, pyspark
mm = ".".join(pyspark.__version__.split(".")[:2])
print(mm, md.version("delta-spark"), os.path.join(os.path.dirname(pyspark.__file__), "jars"))
PY
)
COORD="io.delta:delta-spark_${SPARK_MM}_2.13:${DELTA_VERSION}"
JSTAMP=".jars/.coordinates"
if [ "$(cat "$JSTAMP" 2>/dev/null)" != "$COORD" ]; then
  echo "setup: fetching $COORD and its dependencies from Maven Central into .jars/"
  rm -rf .jars && mkdir -p .jars/staging
  cat > .jars/staging/pom.xml <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ptdm</groupId><artifactId>ptdm-delta-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.delta</groupId><artifactId>delta-spark_${SPARK_MM}_2.13</artifactId>
      <version>${DELTA_VERSION}</version></dependency>
  </dependencies>
</project>
POM
  mvn -q -B -f .jars/staging/pom.xml dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$ROOT/.jars/staging/all" \
    || die "Maven could not fetch $COORD from Maven Central (see the output above)"
  # Keep only what pyspark does not already ship: an older copy of a library that Spark bundles
  # (Hadoop, Jackson, Parquet, log4j, ...) on the classpath would shadow Spark's own.
  .venv/bin/python - "$SPARK_JARS" .jars/staging/all .jars <<'PY'
import os, re, shutil, sys
spark_jars, src, dst = sys.argv[1:]
def artifact(name):
    return re.sub(r"-\d[\w.\-]*\.jar$", "", name)
bundled = {artifact(n) for n in os.listdir(spark_jars) if n.endswith(".jar")}
for name in sorted(os.listdir(src)):
    if name.endswith(".jar") and artifact(name) not in bundled:
        shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
PY
  rm -rf .jars/staging
  echo "$COORD" > "$JSTAMP"
  echo "setup: $(ls .jars/*.jar | wc -l) jars in .jars/"
else
  echo "setup: Delta jars up to date ($COORD)"
fi

# --- 4. the main command's dataset ---------------------------------------------------------------
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1; }) \
      || echo "setup: warning: could not install dataset-fashion-mnist; the README's main command needs it"
  else
    echo "setup: note: dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist) — only the README's main command needs it"
  fi
fi
echo "setup: done. Try: .venv/bin/ptdm --help"
