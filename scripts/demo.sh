#!/usr/bin/env bash
# The README's main command: the whole pipeline on Fashion-MNIST (70,000 images, Debian's
# dataset-fashion-mnist), into the default local lakehouse (./lakehouse), then three queries an
# analyst would run. Extra arguments go to `ptdm run` (e.g. --set lakehouse.root=/tmp/lh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA=/usr/share/datasets/fashion-mnist
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ]; then
  echo "demo: $DATA is missing: apt-get install dataset-fashion-mnist (scripts/setup.sh does it as root)" >&2
  exit 2
fi
PTDM=.venv/bin/ptdm
time $PTDM run "$DATA" --dataset fashion --conf fashion-mnist "$@"
SETS=()
for a in "$@"; do SETS+=("$a"); done
echo
echo "# images per label and split in the curated table"
echo "\$ ptdm sql \"SELECT label, split, count(*) AS n FROM fashion.curated GROUP BY label, split ORDER BY label, split\""
$PTDM sql "SELECT label, split, count(*) AS n FROM fashion.curated GROUP BY label, split ORDER BY label, split" "${SETS[@]}" 2>/dev/null
echo
echo "# why images were dropped, by stage and reason"
echo "\$ ptdm sql \"SELECT stage, reason, count(*) AS n FROM fashion.rejects GROUP BY stage, reason\""
$PTDM sql "SELECT stage, reason, count(*) AS n FROM fashion.rejects GROUP BY stage, reason ORDER BY n DESC" "${SETS[@]}" 2>/dev/null
echo
echo "# quality scores per label: the darkest, least detailed classes"
echo "\$ ptdm sql \"SELECT label, round(avg(brightness),3) AS brightness, round(avg(entropy),2) AS entropy, round(avg(blur)) AS blur FROM fashion.images GROUP BY label ORDER BY brightness\""
$PTDM sql "SELECT label, round(avg(brightness),3) AS brightness, round(avg(entropy),2) AS entropy, round(avg(blur)) AS blur FROM fashion.images GROUP BY label ORDER BY brightness" "${SETS[@]}" 2>/dev/null
echo
echo "# the analysis: statistics, the quality scorecard, outliers and the HTML report"
echo "\$ ptdm analyze --dataset fashion"
time $PTDM analyze --dataset fashion --conf fashion-mnist "$@"
