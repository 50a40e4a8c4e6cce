"""Does the per-image work scale with cores? (issue #14)

One invocation, one input folder, one fresh lakehouse per run: ``ptdm run`` with one core, then
with two — in local mode (``local[1]`` / ``local[2]``) and, with ``--cluster``, on a standalone
cluster with one executor core, then two (``spark.cores.max`` 1 / 2: one worker's core, then
both workers' on ``scripts/spark-cluster.sh``'s cluster of two one-core workers). Prints each
run's wall time, Spark's start-up, the four stages' own time and images/s over those stages, and
the ratio of stage throughput two cores / one core (2.0 = perfect scaling; the driver shares the
machine's two cores with the executors, so less is expected).

    scripts/spark-cluster.sh start      # only for --cluster
    python -m benchmarks.scaling /tmp/photos-jpeg [--cluster spark://127.0.0.1:7077]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from benchmarks.harness import pipeline

STAGES = ("ingest", "process", "dedupe", "curate")


def runs(cluster: str | None, local: bool = True) -> list[tuple[str, list[str]]]:
    out = [("local[1]", ["spark.master=local[1]"]), ("local[2]", ["spark.master=local[2]"])] if local else []
    if cluster:
        out += [("cluster, 1 executor core", [f"spark.master={cluster}", "spark.conf.spark.cores.max=1"]),
                ("cluster, 2 executor cores", [f"spark.master={cluster}", "spark.conf.spark.cores.max=2"])]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--cluster", help="a standalone master URL: also run there with 1 and 2 executor cores")
    ap.add_argument("--skip-local", action="store_true", help="with --cluster: the cluster runs only")
    ap.add_argument("--set", action="append", default=[], help="passed to every ptdm run")
    a = ap.parse_args(argv)
    if a.skip_local and not a.cluster:
        ap.error("--skip-local needs --cluster (nothing would run)")
    rows = []
    for name, sets in runs(a.cluster, not a.skip_local):
        work = Path(tempfile.mkdtemp(prefix="ptdm-scaling-"))
        try:
            extra = [x for s in [*sets, *a.set] for x in ("--set", s)]
            print(f"scaling: ptdm run, {name} ...", flush=True)
            got = pipeline(a.folder, work / "lakehouse", extra)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        staged = sum(got["stages"].get(s, 0.0) for s in STAGES)
        if not staged:
            raise SystemExit(f"scaling: no stage times in the output of the {name} run")
        rows.append((name, got, staged))
        per = " / ".join(f"{got['stages'].get(s, 0):.1f}" for s in STAGES)
        print(f"  wall {got['wall']:.1f} s, start-up {got['startup']:.1f} s, stages {staged:.1f} s ({per}), "
              f"{got['images']} images", flush=True)
    print("\n| run | wall s | start-up s | ingest / process / dedupe / curate s | stages s | images/s (stages) |")
    print("|---|---:|---:|---|---:|---:|")
    for name, got, staged in rows:
        per = " / ".join(f"{got['stages'].get(s, 0):.1f}" for s in STAGES)
        print(f"| {name} | {got['wall']:.1f} | {got['startup']:.1f} | {per} | {staged:.1f} | "
              f"{got['images'] / staged:.0f} |")
    print()
    for one, two in zip(rows[::2], rows[1::2]):
        ratio = one[2] / two[2]
        per_stage = ", ".join(f"{s} {one[1]['stages'].get(s, 0) / two[1]['stages'][s]:.2f}"
                              for s in STAGES if two[1]["stages"].get(s))
        print(f"{two[0]} / {one[0]}: stage throughput **{ratio:.2f}x** ({per_stage}); "
              f"wall {one[1]['wall'] / two[1]['wall']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
