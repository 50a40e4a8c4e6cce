"""``ptdm analyze`` against the ``process`` stage on the same data (issue #15: analyze no slower
than process).

One invocation, one fresh lakehouse: the source (default: Debian's Fashion-MNIST, 70,000
images) goes through ``ptdm ingest``, ``ptdm process``, ``ptdm dedupe`` and ``ptdm curate``, each
its own command (so ``process`` pays a cold JVM as ``analyze`` does), then ``ptdm analyze`` runs
``--repeat`` times. Prints each command's wall time, the stage time it reports ("succeeded in"),
analyze's steps, and the ratios analyze / process (median of the repeats).

    python -m benchmarks.analyze_bench [--source /usr/share/datasets/fashion-mnist] [--repeat 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
from pathlib import Path

from benchmarks.commands import ptdm


def timed(*args: str) -> tuple[float, float, str]:
    """(wall seconds, the stage's own 'succeeded in' seconds, output) of one ``ptdm`` command."""
    wall, out = ptdm(*args)
    m = re.search(r"\] succeeded in ([0-9.]+)s", out)
    return wall, float(m.group(1)) if m else float("nan"), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--conf", default="fashion-mnist", help="dataset config for ingest (default: fashion-mnist)")
    ap.add_argument("--repeat", type=int, default=2, help="analyze runs (median reported)")
    ap.add_argument("--work", help="folder for the lakehouse (default: a temporary one)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a config setting for every command (repeatable), e.g. spark.conf.X=Y")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="analyze-bench-"))
    sets = ["--set", f"lakehouse.root={work / 'lakehouse'}", "--set", "spark.log_level=ERROR",
            "--set", "spark.progress=off", "--conf", args.conf]
    for kv in args.set:
        sets += ["--set", kv]
    ds = ["--dataset", "bench"]
    times: dict[str, tuple[float, float]] = {}
    for stage, extra in (("ingest", [args.source]), ("process", []), ("dedupe", []), ("curate", [])):
        wall, own, _ = timed(stage, *extra, *ds, *sets)
        times[stage] = (wall, own)
        print(f"{stage:8s} wall {wall:6.1f} s   stage {own:6.1f} s", flush=True)
    walls, owns = [], []
    for i in range(args.repeat):
        wall, own, out = timed("analyze", *ds, *sets)
        walls.append(wall)
        owns.append(own)
        print(f"analyze  wall {wall:6.1f} s   stage {own:6.1f} s   (run {i + 1})", flush=True)
        if i == 0:
            for line in out.splitlines():
                if line.startswith("[analyze] ") and "(" in line and "run " not in line:
                    print("   " + line)
    pw, po = times["process"]
    aw, ao = statistics.median(walls), statistics.median(owns)
    print(f"\nanalyze / process: stage {ao / po:.2f}   wall {aw / pw:.2f}   "
          f"(analyze median of {args.repeat}: stage {ao:.1f} s, wall {aw:.1f} s; process stage {po:.1f} s, "
          f"wall {pw:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
