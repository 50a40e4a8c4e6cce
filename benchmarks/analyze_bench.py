"""``ptdm analyze`` against the ``process`` stage on the same data (issue #15: analyze no slower
than process).

One invocation, one fresh lakehouse: the source (default: Debian's Fashion-MNIST, 70,000
images) goes through ``ptdm ingest``, ``ptdm process``, ``ptdm dedupe`` and ``ptdm curate``, each
its own command (so ``process`` pays a cold JVM as ``analyze`` does), then ``ptdm analyze`` runs
``--repeat`` times. Prints each command's wall time, the stage time it reports ("succeeded in"),
analyze's steps, and the ratios analyze / process (median of the repeats).

With ``--in-run``: ``ptdm run SOURCE --analyze`` instead, into a fresh lakehouse per repeat (one
JVM for the five stages, as a user runs it), and the ratio of the two stages' own times in that
run (median of the repeats' ratios).

    python -m benchmarks.analyze_bench [--source /usr/share/datasets/fashion-mnist] [--repeat 2]
    python -m benchmarks.analyze_bench --in-run [--repeat 2]
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
    ap.add_argument("--in-run", action="store_true",
                    help="time process and analyze as stages of one `ptdm run --analyze` (per repeat)")
    args = ap.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="analyze-bench-"))
    sets = ["--set", "spark.log_level=ERROR", "--set", "spark.progress=off", "--conf", args.conf]
    for kv in args.set:
        sets += ["--set", kv]
    ds = ["--dataset", "bench"]
    if args.in_run:
        return in_run(args, work, ds, sets)
    sets += ["--set", f"lakehouse.root={work / 'lakehouse'}"]
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


def in_run(args, work: Path, ds: list[str], sets: list[str]) -> int:
    """``ptdm run --analyze`` into a fresh lakehouse per repeat: every stage's own time."""
    ratios = []
    for i in range(args.repeat):
        lake = work / f"lakehouse-{i + 1}"
        wall, out = ptdm("run", args.source, *ds, "--analyze", *sets, "--set", f"lakehouse.root={lake}")
        own = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\[(\w+)\] succeeded in ([0-9.]+)s", out, re.M)}
        ratios.append(own["analyze"] / own["process"])
        print(f"run {i + 1}: wall {wall:.1f} s; stages " + ", ".join(f"{k} {v:.1f} s" for k, v in own.items())
              + f"; analyze / process {ratios[-1]:.2f}", flush=True)
        for line in out.splitlines():
            if line.startswith("[analyze] ") and "(" in line and "run " not in line:
                print("   " + line)
    print(f"\nanalyze / process in one run: median {statistics.median(ratios):.2f} of {args.repeat}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
