"""The runtime itself: Delta writes, updates, time travel, the catalog, ptdm sql/tables/history."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import ROOT, overrides_for, run_cli

pytestmark = pytest.mark.spark


def test_delta_write_update_time_travel(spark, cfg):
    from delta.tables import DeltaTable

    from ptdm_spark.io import delta

    path = cfg.lakehouse.table_path("foundation", "numbers")
    with delta.commit_metadata(spark, {"run_id": "r1"}):
        delta.merge_into(spark, spark.range(5).withColumnRenamed("id", "n"), path, ("n",))
    with delta.commit_metadata(spark, {"run_id": "r2"}):
        DeltaTable.forPath(spark, path).update("n = 4", {"n": "40"})
        delta.merge_into(spark, spark.range(3, 8).withColumnRenamed("id", "n"), path, ("n",))
    now = sorted(r.n for r in spark.read.format("delta").load(path).collect())
    assert now == [0, 1, 2, 3, 4, 5, 6, 7, 40]  # 4 became 40, then merge inserted 4 anew, not 3
    v0 = sorted(r.n for r in spark.read.format("delta").option("versionAsOf", 0).load(path).collect())
    assert v0 == [0, 1, 2, 3, 4]
    hist = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    assert [json.loads(h.userMetadata)["run_id"] for h in hist] == ["r1", "r2", "r2"]
    delta.register(spark, "foundation", "numbers", path)
    assert spark.sql("SELECT count(*) AS c FROM foundation.numbers").first().c == 9


def test_hamming_distance_in_sql(spark):
    """The session factory defines hamming(a, b) for analysts."""
    assert spark.sql("SELECT hamming(5, -1) AS d, hamming(7, 7) AS z").first() == (62, 0)


def test_sql_command_prints_a_table(ptdm):
    status, out = ptdm("sql", "SELECT 1 + 1 AS two")
    assert status == 0
    assert out.splitlines()[0].strip() == "two" and "2" in out.splitlines()[2]
    status, out = ptdm("sql", "SELECT 1 AS a, 'x,y' AS b", "--format", "csv")
    assert out.splitlines()[:2] == ["a,b", '1,"x,y"']
    status, out = ptdm("sql", "SELECT 3 AS a", "--format", "json")
    assert json.loads(out.splitlines()[0]) == {"a": 3}


def test_sql_errors_are_usage_errors(ptdm):
    status, out = ptdm("sql", "SELEC 1")
    assert status == 2 and "SQL syntax" in out
    status, out = ptdm("sql", "SELECT * FROM nosuchdb.nosuchtable")
    assert status == 2 and "TABLE_OR_VIEW_NOT_FOUND" in out


def test_unknown_dataset_is_exit_2(ptdm):
    for args in (("process", "--dataset", "ghost"), ("history", "ghost"), ("tables", "ghost")):
        status, out = ptdm(*args)
        assert status == 2 and "unknown dataset 'ghost'" in out, out


@pytest.mark.slow
def test_catalog_is_shared_between_processes_and_spark_sql(tmp_path):
    """A table registered by one ptdm process is visible to the next, and to spark-sql."""
    lh = tmp_path / "lh"
    sets = [a for o in overrides_for(lh) for a in ("--set", o)]
    folder = tmp_path / "imgs" / "red"
    folder.mkdir(parents=True)
    from tests.imagefiles import encode, photo

    for i in range(3):
        (folder / f"{i}.png").write_bytes(encode(photo(i)))
    first = run_cli("ingest", str(tmp_path / "imgs"), "--dataset", "shared", *sets)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_cli("sql", "SELECT label, count(*) AS n FROM shared.raw_images GROUP BY label",
                     "--format", "csv", *sets)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.splitlines() == ["label,n", "red,3"]
    tables = run_cli("tables", *sets)
    assert "raw_images" in tables.stdout and "runs" in tables.stdout

    props = run_cli("spark-conf", *sets)
    assert props.returncode == 0
    conf_file = tmp_path / "spark.conf"
    conf_file.write_text(props.stdout)
    spark_sql = os.path.join(os.path.dirname(__import__("sys").executable), "spark-sql")
    import pyspark

    env = {**os.environ, "SPARK_HOME": os.path.dirname(pyspark.__file__)}
    init = tmp_path / "functions.sql"
    init.write_text(run_cli("spark-conf", "--functions", *sets).stdout)
    proc = subprocess.run([spark_sql, "--properties-file", str(conf_file), "-i", str(init), "-S", "-e",
                           "SELECT count(*), hamming(5, -1) FROM shared.raw_images"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1].split() == ["3", "62"]


def test_stale_running_rows_are_read_without_a_spark_job_and_marked_abandoned(spark, cfg):
    """Every command starts by marking ``running`` rows of dead processes ``abandoned``. On a local
    lakehouse the check reads ``runs`` with deltalake: the rows the test wrote come back, no Spark
    job runs for it, and the next run marks exactly the dead process's row."""
    import socket

    from pyspark.sql import functions as F

    from ptdm_spark import runs
    from ptdm_spark.io import delta
    from ptdm_spark.runs import Run

    alive = Run(job="process", dataset="stale_check", config=cfg)
    alive.begin(spark)  # this process: alive
    gone = Run(job="dedupe", dataset="stale_check", config=cfg)
    # a process that has exited (and been reaped): its pid names nobody now
    dead_pid = int(subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout)
    path = alive.table_path("runs")
    with delta.commit_metadata(spark, gone.commit_meta):
        row = gone._row(spark, "running", None)
        delta.append(spark, row.withColumn("pid", F.lit(dead_pid).cast(row.schema["pid"].dataType)), path)

    sc = spark.sparkContext
    sc.setJobGroup("stale-check", "the stale-run check")
    try:
        got = sorted(Run(job="curate", dataset="stale_check", config=cfg)._running(spark, path))
        sc._jsc.sc().listenerBus().waitUntilEmpty()  # every job started so far is in the tracker
        jobs = list(sc.statusTracker().getJobIdsForGroup("stale-check"))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    host = socket.gethostname()
    assert got == sorted([(alive.run_id, host, os.getpid()), (gone.run_id, host, dead_pid)])
    assert jobs == []

    runs._LOOKED_FOR_STALE.discard(path)  # the check runs once per process and dataset: as a new process would
    Run(job="curate", dataset="stale_check", config=cfg).begin(spark)
    status = {r.run_id: r.status for r in spark.read.format("delta").load(path).collect()}
    assert status[gone.run_id] == "abandoned" and status[alive.run_id] == "running"


def test_runs_rows_are_written_without_a_spark_job_and_spark_reads_them(spark, cfg):
    """Every command writes its ``runs`` row twice (``running``, then its end). On a local
    lakehouse deltalake writes both: no Spark job runs for them, Spark reads the table it created
    (one row per run, the final status, the maps and timestamps as written), the commits carry the
    run id as Spark's would, and Spark can append to it. A table made by an older ptdm (a column
    fewer) is written by Spark instead, which adds the column; a table Spark made is written by
    deltalake."""
    import datetime as dt

    from delta.tables import DeltaTable

    from ptdm_spark import schemas
    from ptdm_spark.io import delta
    from ptdm_spark.runs import Run

    def spark_jobs(fn):
        sc = spark.sparkContext
        sc.setJobGroup("runs-row", "the runs rows")
        try:
            fn()
            sc._jsc.sc().listenerBus().waitUntilEmpty()
            return list(sc.statusTracker().getJobIdsForGroup("runs-row"))
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)
            sc.setLocalProperty("spark.job.description", None)

    before = dt.datetime.now()
    first = Run(job="ingest", dataset="runs_native", config=cfg, args=["ingest", "x"])
    path = first.table_path("runs")
    first.begin(spark)  # creates the table (deltalake) and registers it in the catalog (Spark reads it once)
    first.counts["images"] = 7
    first.output_versions["raw_images"] = 3
    first.record(spark, "succeeded")
    then = Run(job="process", dataset="runs_native", config=cfg)
    assert spark_jobs(lambda: (then.begin(spark), then.record(spark, "failed"))) == []
    rows = {x.run_id: x for x in spark.read.format("delta").load(path).collect()}
    assert sorted(rows) == sorted([first.run_id, then.run_id]) and rows[then.run_id].status == "failed"
    r = rows[first.run_id]
    assert (r.status, r.job, r.pid, r.args) == ("succeeded", "ingest", os.getpid(), "ingest x")
    assert r.counts == {"images": 7} and r.output_versions == {"raw_images": 3} and r.input_versions == {}
    # the instants as written, to the microsecond (not shifted by a time zone)
    micros = spark.read.format("delta").load(path).filter(f"run_id = '{first.run_id}'").selectExpr(
        "unix_micros(started_at) AS s", "unix_micros(finished_at) AS f").first()
    assert micros.s == round(first.started_at.timestamp() * 1e6)
    assert before.timestamp() * 1e6 - 1e6 <= micros.s <= micros.f <= dt.datetime.now().timestamp() * 1e6
    hist = DeltaTable.forPath(spark, path).history().orderBy("version").collect()
    assert [json.loads(h.userMetadata)["run_id"] for h in hist] == [first.run_id] * 2 + [then.run_id] * 2
    # Spark appends to the table deltalake made (what hdfs:// and encrypted lakehouses do)
    second = Run(job="dedupe", dataset="runs_native", config=cfg)
    with delta.commit_metadata(spark, second.commit_meta):
        delta.append(spark, second._row(spark, "running", None), path)
    assert sorted(x.status for x in spark.read.format("delta").load(path).collect()) == ["failed", "running",
                                                                                          "succeeded"]

    # a runs table Spark made (every lakehouse written before this ledger change): deltalake writes
    # into it, no Spark job
    made = Run(job="ingest", dataset="runs_spark_made", config=cfg)
    made_path = made.table_path("runs")
    with delta.commit_metadata(spark, made.commit_meta):
        delta.append(spark, made._row(spark, "succeeded", dt.datetime.now(dt.timezone.utc)), made_path)
    delta.register(spark, "runs_spark_made", "runs", made_path)
    later = Run(job="curate", dataset="runs_spark_made", config=cfg)
    assert spark_jobs(lambda: (later.begin(spark), later.record(spark, "succeeded"))) == []
    assert sorted((x.run_id, x.status) for x in spark.read.format("delta").load(made_path).collect()) == sorted(
        [(made.run_id, "succeeded"), (later.run_id, "succeeded")])

    # an older ptdm's runs table, without the counts column: deltalake refuses, Spark merges it
    old = Run(job="ingest", dataset="runs_older", config=cfg)
    old_path = old.table_path("runs")
    spark.createDataFrame([old._values("succeeded", dt.datetime.now(dt.timezone.utc))],
                          schema=schemas.RUNS).drop("counts").write.format("delta").save(old_path)
    newer = Run(job="process", dataset="runs_older", config=cfg)
    newer.begin(spark)
    newer.counts["images"] = 2
    newer.record(spark, "succeeded")
    got = {x.run_id: x for x in spark.read.format("delta").load(old_path).collect()}
    assert got[newer.run_id].counts == {"images": 2} and got[old.run_id].counts is None
    assert got[newer.run_id].status == "succeeded" and len(got) == 2


def test_the_driver_maps_the_class_archive_set_up_built(spark):
    """scripts/setup.sh builds the driver's class archive; the session's JVM was started with it and
    has it mapped, and a JVM on the session's own classpath loads Spark's classes from it (the JVM ignores an
    archive that does not match its classpath, silently: only its class-loading log tells)."""
    import glob

    from ptdm_spark import class_archive, jars

    archive = jars.find()[0] / class_archive.ARCHIVE
    assert archive.is_file(), f"no {archive}: scripts/setup.sh (or ptdm setup) builds it"
    jvm = spark.sparkContext._jvm
    args = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert f"-XX:SharedArchiveFile={archive}" in args
    pid = jvm.java.lang.ProcessHandle.current().pid()
    with open(f"/proc/{pid}/maps") as fh:  # the session's JVM has the archive mapped
        assert str(archive) in fh.read()
    classpath = jvm.java.lang.System.getProperty("java.class.path")
    java = os.path.join(jvm.java.lang.System.getProperty("java.home"), "bin", "java")
    assert glob.glob(classpath.split(":")[-1])  # the session's pyspark jars
    out = subprocess.run([java, f"-XX:SharedArchiveFile={archive}", "-Xlog:class+load=info", "-cp", classpath,
                          "org.apache.spark.deploy.SparkSubmit", "--version"],
                         capture_output=True, text=True, timeout=120).stdout
    line = next((ln for ln in out.splitlines() if ln.rstrip().split(" source:")[0].endswith(
        " org.apache.spark.deploy.SparkSubmit")), "")
    assert "source: shared objects file (top)" in line, line or out[-2000:]


def test_a_lakehouse_under_a_folder_with_a_space(tmp_path):
    """Real folders have spaces: a lakehouse under ``My Data`` starts (the catalog's folder is a
    quoted JVM option), and the tables and the runs ledger land in that folder, written by Spark
    and by deltalake alike, with no second folder named with ``%20``."""
    from deltalake import DeltaTable

    from tests.imagefiles import encode, photo

    src = tmp_path / "photos"
    src.mkdir()
    for i in range(2):
        (src / f"p{i}.png").write_bytes(encode(photo(i)))
    root = tmp_path / "My Data" / "lakehouse"
    proc = run_cli("ingest", str(src), "--dataset", "spaced", "--set", f"lakehouse.root={root}",
                   "--set", "spark.progress=off")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["My Data", "photos"]
    runs = DeltaTable(str(root / "spaced" / "runs")).to_pyarrow_table().to_pylist()
    assert [(r["job"], r["status"]) for r in runs] == [("ingest", "succeeded")]
    assert DeltaTable(str(root / "spaced" / "raw_images")).to_pyarrow_table().num_rows == 2
    assert "written with Spark instead" not in proc.stderr  # the ledger took deltalake's path


def test_a_tables_files_read_natively_are_what_deltas_reader_reads(spark, tmp_path):
    """``read_natively`` (deltalake lists a version's Parquet files, Spark reads them): the rows
    and schema Delta's own reader gives at that version, under a folder with a space and a ``#``,
    after an UPDATE and a DELETE (files replaced and removed), for an old version, a table with
    maps, arrays, structs, binary, timestamps and timestamp_ntz (a reader feature), and an empty
    one. A table whose files do not hold its rows as they are (deletion vectors, column mapping),
    a partitioned one, a path Spark would glob, a version whose files were vacuumed: None,
    Delta's reader reads them (or says what is missing)."""
    import datetime as dt

    from pyspark.sql import functions as F

    from ptdm_spark.io import delta

    root = tmp_path / "My Data #1"
    path = str(root / "t")
    rows = spark.range(40).select(
        F.col("id").alias("n"), F.col("id").cast("string").alias("s"), F.array("id", F.lit(7)).alias("arr"),
        F.create_map(F.col("id").cast("string"), F.col("id") * 2).alias("m"),
        F.struct(F.col("id").alias("a"), F.lit("x").alias("b")).alias("st"),
        F.encode(F.col("id").cast("string"), "utf-8").alias("bin"),
        F.lit(dt.datetime(2026, 12, 5, 10, 30)).alias("ts"),
        F.lit("2026-12-05 10:30:00").cast("timestamp_ntz").alias("ntz"))  # the one reader feature let through
    rows.repartition(3).write.format("delta").save(path)
    spark.sql(f"UPDATE delta.`{path}` SET s = 'changed' WHERE n < 5")
    spark.sql(f"DELETE FROM delta.`{path}` WHERE n >= 30")

    from deltalake import DeltaTable

    assert DeltaTable(path).protocol().reader_features == ["timestampNtz"]

    def same(version):
        native = delta.read_natively(spark, path, version)
        assert native is not None
        theirs = spark.read.format("delta").option("versionAsOf", version).load(path)
        assert native.schema == theirs.schema
        assert sorted(native.collect()) == sorted(theirs.collect())
        return native

    now = same(2)
    assert now.count() == 30 and now.filter("s = 'changed'").count() == 5
    assert same(0).count() == 40 and same(0).filter("s = 'changed'").count() == 0
    empty = str(root / "empty")
    rows.limit(0).write.format("delta").save(empty)
    assert delta.read_natively(spark, empty, 0).count() == 0

    dv = str(root / "dv")
    rows.select("n", "s").repartition(1).write.format("delta").option("delta.enableDeletionVectors", "true").save(dv)
    spark.sql(f"DELETE FROM delta.`{dv}` WHERE n < 10")
    assert delta.read_natively(spark, dv, delta.table_version(spark, dv)) is None
    mapped = str(root / "mapped")
    rows.select("n", "s").write.format("delta").option("delta.columnMapping.mode", "name").save(mapped)
    assert delta.read_natively(spark, mapped, 0) is None
    parted = str(root / "parted")
    rows.select("n", (F.col("n") % 2).alias("odd")).write.format("delta").partitionBy("odd").save(parted)
    assert delta.read_natively(spark, parted, 0) is None
    globbed = str(tmp_path / "a[1]" / "t")
    rows.select("n").write.format("delta").save(globbed)
    assert delta.read_natively(spark, globbed, 0) is None
    from delta.tables import DeltaTable as SparkDeltaTable

    with delta.session_conf(spark, {"spark.databricks.delta.retentionDurationCheck.enabled": "false"}):
        SparkDeltaTable.forPath(spark, path).vacuum(0.0)
    assert delta.read_natively(spark, path, 0) is None  # its files are gone
    same(2)
