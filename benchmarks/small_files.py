"""Loose small files: ptdm's reader against Spark's ``binaryFile`` defaults (issue 14's lever
"read loose files in fewer, larger tasks").

In one Spark session (ptdm's, local[2]), alternating, ``--repeat`` times each, the same files are
read and every byte handed to Spark's ``noop`` sink (so only the read is timed, no table write):

* ``binaryFile``: Spark's file source on the folder (``recursiveFileLookup``), its defaults
  (``spark.sql.files.maxPartitionBytes`` 128 MB, ``openCostInBytes`` 4 MB): the JVM opens each
  file through Hadoop's local file system (with its ``.crc`` probe);
* ``binaryFile packed``: the same scan with ptdm's packing settings (``ingest.max_partition_bytes``,
  ``ingest.open_cost_bytes``): fewer, larger tasks;
* ``ptdm``: what ``ptdm ingest`` does for local files (``io.sources._contents``): the driver's
  listing packed into partitions by size, each partition's files read by a Python worker.

Prints each mode's median seconds, tasks, files/s, and its time against ``binaryFile``.

    python -m benchmarks.small_files benchmarks/out/data/fashion-png [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    from benchmarks.harness import list_files
    from ptdm_spark.config import load_config
    from ptdm_spark.io import sources
    from ptdm_spark.session import get_session

    files = list_files(a.folder)
    work = Path(tempfile.mkdtemp(prefix="ptdm-small-files-"))
    try:
        cfg = load_config(overrides=[f"lakehouse.root={work}", "spark.progress=off", "spark.log_level=ERROR"])
        spark = get_session(cfg.spark, cfg.lakehouse)
        ing = cfg.ingest
        pairs = [(f.resolve().as_uri(), f.stat().st_size) for f in files]
        total = sum(n for _, n in pairs)
        print(f"{len(files)} files, {total / 1e6:.1f} MB (mean {total / max(1, len(files)):.0f} bytes)", flush=True)

        def binary(max_bytes: str, open_cost: str):
            def go():
                def run():  # the settings hold while the write plans and runs its scan
                    spark.conf.set("spark.sql.files.maxPartitionBytes", max_bytes)
                    spark.conf.set("spark.sql.files.openCostInBytes", open_cost)
                    try:
                        df.write.format("noop").mode("overwrite").save()
                    finally:
                        spark.conf.unset("spark.sql.files.maxPartitionBytes")
                        spark.conf.unset("spark.sql.files.openCostInBytes")

                spark.conf.set("spark.sql.files.maxPartitionBytes", max_bytes)
                spark.conf.set("spark.sql.files.openCostInBytes", open_cost)
                try:
                    df = (spark.read.format("binaryFile").option("recursiveFileLookup", "true")
                          .load(str(a.folder.resolve())).select("path", "content"))
                    tasks = df.rdd.getNumPartitions()
                finally:
                    spark.conf.unset("spark.sql.files.maxPartitionBytes")
                    spark.conf.unset("spark.sql.files.openCostInBytes")
                return tasks, run
            return go

        def ptdm():
            df = sources._contents(spark, pairs, ing)
            return df.rdd.getNumPartitions(), lambda: df.write.format("noop").mode("overwrite").save()

        modes = {"binaryFile": binary("134217728", "4194304"),
                 "binaryFile packed": binary(str(ing.max_partition_bytes), str(ing.open_cost_bytes)),
                 "ptdm": ptdm}
        times: dict[str, list[float]] = {m: [] for m in modes}
        tasks: dict[str, int] = {}
        for m, build in modes.items():  # a first, untimed read of each: plans, JIT, page cache
            tasks[m], run = build()
            run()
        for i in range(a.repeat):
            for m, build in modes.items():
                t = time.monotonic()
                tasks[m], run = build()
                run()
                times[m].append(time.monotonic() - t)
                print(f"run {i + 1} {m}: {times[m][-1]:.1f} s", flush=True)
        spark.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(times["binaryFile"])
    print(f"\n| reader ({len(files)} files, median of {a.repeat}, warm session) | tasks | s | files/s | "
          "time / binaryFile |")
    print("|---|---:|---:|---:|---:|")
    for m in modes:
        med = statistics.median(times[m])
        print(f"| {m} | {tasks[m]} | {med:.1f} | {len(files) / med:,.0f} | {med / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
