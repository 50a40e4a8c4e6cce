"""What a command spends before its first stage: Spark's start-up taken apart (issue 14).

Each variant starts a fresh Python process (so each pays a cold JVM), builds a session and
times, in that process: importing pyspark, the session (JVM, SparkContext), the first SQL
statement (``SELECT 1``), ptdm's SQL function (a temporary function: the session catalog), the
first catalog call (``SHOW TABLES``: with Hive, Derby boots here), and the first read of a small
Delta table. Variants, each adding one thing to the one before:

* ``plain``: local[2], in-memory catalog, no Delta jars;
* ``delta``: + Delta's jars, SQL extension and catalog (in-memory catalog);
* ``hive``: + the Hive catalog on embedded Derby = what ``ptdm`` starts (``get_session``);
* ``hive, no archive``: the same without the driver's class archive (``ptdm_spark/class_archive.py``;
  the variants above map it when set-up built it).

Prints the median of ``--repeat`` processes per variant and each variant's total against
``plain`` (the baseline measured in the same invocation).

    python -m benchmarks.startup [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("plain", "delta", "hive", "hive, no archive")
STEPS = ("import pyspark", "session (JVM, SparkContext)", "first SQL (SELECT 1)", "SQL function",
         "first catalog call (SHOW TABLES)", "first Delta read + count")


def _child(variant: str, work: str) -> dict[str, float]:
    """One cold start of ``variant`` in this process; seconds per step."""
    t0 = time.monotonic()
    got: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal t0
        now = time.monotonic()
        got[name] = now - t0
        t0 = now

    import pyspark  # noqa: F401
    from pyspark.sql import SparkSession

    from ptdm_spark.config import load_config
    from ptdm_spark.session import SQL_FUNCTIONS, get_session, spark_properties

    lap("import pyspark")
    cfg = load_config(overrides=[f"lakehouse.root={work}/lakehouse", "spark.progress=off", "spark.log_level=ERROR"])
    if variant.startswith("hive"):
        # get_session also creates ptdm's SQL function; time it on its own as for the others.
        import ptdm_spark.session as s

        s.SQL_FUNCTIONS = ()
        if variant.endswith("no archive"):
            s.class_archive.java_options = lambda folder: []
        spark = get_session(cfg.spark, cfg.lakehouse)
    else:
        props = spark_properties(cfg.spark, cfg.lakehouse)
        keep = {"spark.master", "spark.app.name", "spark.driver.memory", "spark.sql.shuffle.partitions",
                "spark.driver.extraJavaOptions", "spark.ui.showConsoleProgress", "spark.locality.wait"}
        if variant == "delta":
            keep |= {"spark.jars", "spark.sql.extensions", "spark.sql.catalog.spark_catalog",
                     "spark.databricks.delta.snapshotPartitions", "spark.databricks.delta.schema.autoMerge.enabled"}
        builder = SparkSession.builder
        for k, v in props.items():
            if k in keep:
                builder = builder.config(k, v)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel("ERROR")
    lap("session (JVM, SparkContext)")
    spark.sql("SELECT 1").collect()
    lap("first SQL (SELECT 1)")
    for statement in SQL_FUNCTIONS:
        spark.sql(statement)
    lap("SQL function")
    spark.sql("SHOW TABLES").collect()
    lap("first catalog call (SHOW TABLES)")
    if variant != "plain":
        spark.read.format("delta").load(f"{work}/table").count()
    else:
        spark.read.parquet(f"{work}/table").count()  # the same files, as plain Parquet
    lap("first Delta read + count")
    spark.stop()
    return got


def _prepare(work: Path) -> None:
    """A small Delta table (100 rows, two commits) for the first-read step, written by a session
    of its own."""
    code = (
        "from pyspark.sql import SparkSession; import sys;"
        "from ptdm_spark.config import load_config; from ptdm_spark.session import spark_properties;"
        f"cfg = load_config(overrides=['lakehouse.root={work}/prep', 'spark.progress=off']);"
        "b = SparkSession.builder;"
        "[b.config(k, v) for k, v in spark_properties(cfg.spark, cfg.lakehouse).items() "
        " if not k.startswith('spark.sql.catalogImplementation') and 'hive' not in k and 'warehouse' not in k];"
        "s = b.getOrCreate();"
        f"s.range(100).write.format('delta').save('{work}/table');"
        f"s.range(100, 200).write.format('delta').mode('append').save('{work}/table')"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="cold processes per variant (median reported)")
    ap.add_argument("--child", nargs=2, metavar=("VARIANT", "WORK"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(_child(*a.child)))
        return 0
    work = Path(tempfile.mkdtemp(prefix="ptdm-startup-"))
    try:
        _prepare(work)
        runs: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for i in range(a.repeat):
            for v in VARIANTS:  # interleaved, so that the machine's drift hits every variant alike
                shutil.rmtree(work / "lakehouse", ignore_errors=True)
                out = subprocess.run([sys.executable, "-m", "benchmarks.startup", "--child", v, str(work)],
                                     cwd=ROOT, check=True, capture_output=True, text=True).stdout
                runs[v].append(json.loads(out.strip().splitlines()[-1]))
                print(f"run {i + 1} {v}: {sum(runs[v][-1].values()):.1f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {v: {s: statistics.median(r[s] for r in runs[v]) for s in STEPS} for v in VARIANTS}
    total = {v: statistics.median(sum(r.values()) for r in runs[v]) for v in VARIANTS}
    print(f"| step (median of {a.repeat} cold processes, s) | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---:|" * len(VARIANTS))
    for s in STEPS:
        print(f"| {s} | " + " | ".join(f"{med[v][s]:.2f}" for v in VARIANTS) + " |")
    print("| **total** | " + " | ".join(f"**{total[v]:.2f}**" for v in VARIANTS) + " |")
    print("| total / plain | " + " | ".join(f"{total[v] / total['plain']:.2f}" for v in VARIANTS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
