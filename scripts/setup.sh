#!/usr/bin/env bash
# One-command set-up of ptdm-spark on a new machine.
#
#   scripts/setup.sh               # or: make setup
#   scripts/setup.sh --benchmarks  # also the Debian image data the benchmarks read (step 6)
#
# 1. checks python3 (>= 3.10), java (>= 17) and mvn, and stops with one line if one is missing;
# 2. creates .venv and installs the package with its dev extras: the ranges in pyproject.toml,
#    the exact tested versions from constraints.txt;
# 3. fetches the Delta Lake jars for the installed Spark minor version from Maven Central with
#    Maven into .jars/ (git-ignored; ptdm_spark/jars.py, also `ptdm setup`), so that no Spark
#    session ever downloads anything at start; compiles ptdm_spark/java (the Parquet encryption
#    classes, security.encryption) with javac against pyspark's jars into .jars/ptdm-crypto.jar;
#    and builds the driver JVM's class archive .jars/ptdm-driver.jsa (a short ptdm run, ~1.5 min
#    the first time, ~250 MB; every later driver JVM maps it: a few seconds less per command);
# 4. installs Debian's dataset-fashion-mnist (the README's main command) when it is missing and
#    apt is available;
# 5. installs Debian's chromium (the report's browser test) when it is missing and apt is available;
# 6. with --benchmarks: installs Debian's oxygen-icon-theme, gnome-backgrounds and opencv-doc
#    (benchmarks/near_duplicates.py's icons, wallpapers and logos) when apt is available.
# A rerun with nothing changed takes a few seconds and changes nothing (stamp files in .venv/ and
# .jars/ record what was done).
set -euo pipefail
BENCHMARKS=0
for arg in "$@"; do
  case "$arg" in
    --benchmarks) BENCHMARKS=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (known: --benchmarks)" >&2; exit 2 ;;
  esac
done
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
command -v javac >/dev/null || die "javac not found: install a JDK, not only a JRE (Debian: apt-get install openjdk-17-jdk-headless); it builds ptdm-crypto.jar"

# --- 2. virtualenv + package -------------------------------------------------------------------
STAMP=".venv/.ptdm-installed"
WANT="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "setup: installing ptdm-spark and the tested dependency set (constraints.txt) into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]" -c constraints.txt
  echo "$WANT" > "$STAMP"
else
  echo "setup: .venv is up to date"
fi

# --- 3. Delta jars and ptdm-crypto.jar (the same code as `ptdm setup`, into the checkout's .jars/)
.venv/bin/python -m ptdm_spark.jars .jars || die "could not fetch the Delta jars or build ptdm-crypto.jar (see above)"
# (the same command builds .jars/ptdm-driver.jsa; without it ptdm only starts a few seconds slower)

# --- 4. the main command's dataset ---------------------------------------------------------------
if [ ! -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    (apt-get install -y -qq -o DPkg::Lock::Timeout=300 dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq -o DPkg::Lock::Timeout=300 dataset-fashion-mnist >/dev/null 2>&1; }) \
      || echo "setup: warning: could not install dataset-fashion-mnist; the README's main command needs it"
  else
    echo "setup: note: dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist) — only the README's main command needs it"
  fi
fi
# --- 5. a headless browser for the report test (ptdm analyze's report.html) --------------------
if ! command -v chromium >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's chromium (the report test renders report.html headless)"
    (apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq -o DPkg::Lock::Timeout=300 chromium >/dev/null 2>&1; }) \
      || echo "setup: warning: could not install chromium; the report's browser test needs it"
  else
    echo "setup: note: chromium is not installed (apt-get install chromium) — only the report's browser test needs it"
  fi
fi
# --- 6. the benchmarks' image data (only with --benchmarks) ------------------------------------------
if [ "$BENCHMARKS" = 1 ]; then
  want=()
  [ -d /usr/share/icons/oxygen/base/64x64 ] || want+=(oxygen-icon-theme)
  [ -d /usr/share/backgrounds/gnome ] || want+=(gnome-backgrounds)
  [ -e /usr/share/doc/opencv-doc/examples/data/LinuxLogo.jpg ] || want+=(opencv-doc)
  if [ "${#want[@]}" = 0 ]; then
    echo "setup: the benchmarks' Debian image data is installed"
  elif command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's ${want[*]} (benchmarks/near_duplicates.py)"
    (apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${want[@]}" >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${want[@]}" >/dev/null 2>&1; }) \
      || echo "setup: warning: could not install ${want[*]}; benchmarks/near_duplicates.py quality needs them"
  else
    echo "setup: note: install ${want[*]} (apt-get install ${want[*]}) for benchmarks/near_duplicates.py"
  fi
fi
echo "setup: done. Try: .venv/bin/ptdm --help"
