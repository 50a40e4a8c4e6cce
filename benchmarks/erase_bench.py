"""The cost of erasing one image (issue #18): ``ptdm erase`` of one curated image from a dataset,
then ``ptdm erase --verify`` of it, against the ``ptdm run`` that built the same dataset.

One invocation: the source (default: Debian's Fashion-MNIST, 70,000 images) goes through one
``ptdm run`` into a fresh lakehouse (or ``--lakehouse`` reuses a folder where a dataset ``bench``
was made by an earlier invocation), then one curated image — the smallest id, so reruns pick the
same kind of image — is erased and verified absent. Prints each command's wall time, the steps
erase reports, and the ratios erase / run and verify / run.

    python -m benchmarks.erase_bench [--source /usr/share/datasets/fashion-mnist] [--lakehouse DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from benchmarks.commands import ptdm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--conf", default="fashion-mnist", help="dataset config for ingest (default: fashion-mnist)")
    ap.add_argument("--lakehouse", help="reuse this lakehouse (dataset 'bench' made by an earlier invocation)")
    args = ap.parse_args(argv)
    lakehouse = Path(args.lakehouse or Path(tempfile.mkdtemp(prefix="erase-bench-")) / "lakehouse")
    sets = ["--set", f"lakehouse.root={lakehouse}", "--set", "spark.log_level=ERROR",
            "--set", "spark.progress=off", "--conf", args.conf]
    ds = ["--dataset", "bench"]
    run_wall = None
    if not (lakehouse / "bench" / "curated").exists():
        run_wall, _ = ptdm("run", args.source, *ds, *sets)
        print(f"run      wall {run_wall:7.1f} s   (builds the dataset)", flush=True)
    q = ("SELECT image_id, (SELECT count(*) FROM bench.curated) AS n FROM bench.curated "
         "ORDER BY image_id LIMIT 1")
    _, out = ptdm("sql", q, "--format", "csv", *sets)
    m = re.search(r"^([0-9a-f]{64}),(\d+)$", out, re.M)  # the csv row (Spark's log lines around it)
    if m is None:
        sys.exit(f"no curated image found:\n{out[-2000:]}")
    image_id, n = m.groups()
    print(f"erasing  {image_id} of {n} curated images", flush=True)
    erase_wall, out = ptdm("erase", *ds, "--image-id", image_id, "--reason", "benchmark", *sets)
    print(f"erase    wall {erase_wall:7.1f} s", flush=True)
    for line in out.splitlines():
        if line.startswith("[erase] ") and line.rstrip().endswith("s)"):
            print("   " + line)
    verify_wall, out = ptdm("erase", "--verify", *ds, "--image-id", image_id, *sets, ok=(0, 1))
    verdict = "absent" if "absent" in out else "FOUND"
    print(f"verify   wall {verify_wall:7.1f} s   ({verdict})", flush=True)
    if run_wall:
        print(f"\nerase / run: {erase_wall / run_wall:.2f}   verify / run: {verify_wall / run_wall:.2f}   "
              f"(run {run_wall:.1f} s, erase {erase_wall:.1f} s, verify {verify_wall:.1f} s)")
    return 0 if verdict == "absent" else 1


if __name__ == "__main__":
    raise SystemExit(main())
