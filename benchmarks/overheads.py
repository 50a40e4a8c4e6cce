"""The fixed costs a job pays whatever its input: one SparkSession with the catalog, then the
median of several runs of each building block the stages are made of (a tiny action, a staging
write, a Delta create, a Delta MERGE, the history read after a write, a catalog registration).

    python -m benchmarks.overheads [--repeat 7]

These are what a ``ptdm run`` of 20 images is made of: they are its floor on a given machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=7)
    a = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ptdm-overheads-"))
    try:
        t0 = time.monotonic()
        from ptdm_spark.config import load_config
        from ptdm_spark.io import delta
        from ptdm_spark.session import get_session

        cfg = load_config(overrides=[f"lakehouse.root={work / 'lakehouse'}", "spark.progress=false"])
        spark = get_session(cfg.spark, cfg.lakehouse)
        rows = [("SparkSession with the Hive catalog (JVM start included)", time.monotonic() - t0, None)]
        df = spark.createDataFrame([(i, str(i)) for i in range(100)], "a long, b string")
        blocks = [
            ("tiny action (count)", lambda i: spark.range(10).count()),
            ("small groupBy + collect", lambda i: df.groupBy("b").count().collect()),
            ("staging write (Parquet, 100 rows)", lambda i: df.write.mode("overwrite").parquet(str(work / f"p{i}"))),
            ("Delta create (100 rows)", lambda i: df.write.format("delta").mode("error").save(str(work / f"d{i}"))),
            ("Delta MERGE of the same 100 rows", lambda i: delta.merge_into(spark, df, str(work / f"d{i}"), ("a",))),
            ("history read after a write (commit_of)", lambda i: delta.commit_of(spark, str(work / f"d{i}"), "x")),
            ("Delta read + count", lambda i: spark.read.format("delta").load(str(work / f"d{i}")).count()),
            ("catalog registration", lambda i: delta.register(spark, "overheads", f"t{i}", str(work / f"d{i}"))),
        ]
        for name, fn in blocks:
            times = []
            for i in range(a.repeat):
                t = time.monotonic()
                fn(i)
                times.append(time.monotonic() - t)
            rows.append((name, statistics.median(times), times[0]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| building block | median s | first s |")
    print("|---|---:|---:|")
    for name, med, first in rows:
        print(f"| {name} | {med:.2f} | {'' if first is None else f'{first:.2f}'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
