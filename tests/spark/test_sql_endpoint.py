"""The analyst's SQL: read-only by default (decided from the parsed plan), one-line errors, a busy
catalog answered at once, and the long-lived SQL endpoint (start, query while a job writes,
several analysts at once, stop, fall back in-process)."""

from __future__ import annotations

import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import PTDM, ROOT, overrides_for, run_cli

pytestmark = pytest.mark.spark

READS = [
    "SELECT count(*) FROM ro.numbers",
    "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
    "SELECT * FROM ro.numbers WHERE n IN (SELECT 1)",
    "SELECT * FROM ro.numbers VERSION AS OF 0",
    "VALUES (1, 2)",
    "TABLE ro.numbers",
    "SHOW TABLES IN ro",
    "SHOW DATABASES",
    "DESCRIBE ro.numbers",
    "DESCRIBE HISTORY ro.numbers",
    "DESCRIBE DETAIL ro.numbers",
    "SHOW CREATE TABLE ro.numbers",
    "SHOW FUNCTIONS LIKE 'ham*'",
    "EXPLAIN SELECT 1",
    "SET spark.sql.shuffle.partitions",
]
WRITES = [
    "DROP TABLE ro.numbers",
    "DROP DATABASE ro CASCADE",
    "DELETE FROM ro.numbers WHERE n = 1",
    "INSERT INTO ro.numbers VALUES (9)",
    "INSERT OVERWRITE ro.numbers SELECT 1",
    "WITH x AS (SELECT 9 AS n) INSERT INTO ro.numbers SELECT * FROM x",
    "FROM ro.numbers INSERT INTO ro.numbers SELECT n",
    "UPDATE ro.numbers SET n = 2",
    "MERGE INTO ro.numbers t USING ro.numbers s ON t.n = s.n WHEN MATCHED THEN DELETE",
    "CREATE TABLE ro.other (a INT)",
    "CREATE TABLE ro.copy AS SELECT * FROM ro.numbers",
    "CREATE DATABASE elsewhere",
    "CREATE TEMPORARY VIEW v AS SELECT 1",
    "ALTER TABLE ro.numbers SET TBLPROPERTIES ('a' = 'b')",
    "ALTER TABLE ro.numbers ADD COLUMNS (b INT)",
    "TRUNCATE TABLE ro.numbers",
    "OPTIMIZE ro.numbers",
    "VACUUM ro.numbers",
    "RESTORE TABLE ro.numbers TO VERSION AS OF 0",
    "CREATE TABLE ro.clone SHALLOW CLONE ro.numbers",
    "CONVERT TO DELTA parquet.`/tmp/nothing`",
    "REORG TABLE ro.numbers APPLY (PURGE)",
    "INSERT OVERWRITE DIRECTORY '/tmp/out' SELECT 1",
    "CACHE TABLE ro.numbers",
    "ADD JAR /tmp/x.jar",
    "MSCK REPAIR TABLE ro.numbers",
    "ANALYZE TABLE ro.numbers COMPUTE STATISTICS",
    "/* /* */ SELECT */ DROP TABLE ro.numbers",  # a nested comment hides the SELECT
]


@pytest.fixture(scope="module")
def numbers(spark, cfg):
    """ro.numbers: a Delta table of 4 rows in the test catalog."""
    from ptdm_spark.io import delta

    path = cfg.lakehouse.table_path("ro", "numbers")
    delta.merge_into(spark, spark.range(4).withColumnRenamed("id", "n"), path, ("n",))
    delta.register(spark, "ro", "numbers", path)
    return path


@pytest.mark.parametrize("statement", READS)
def test_reads_pass_the_parsed_plan_check(spark, numbers, statement):
    from ptdm_spark.analysis import sql

    verdict = sql.classify(sql.parsed_plan(spark, statement))
    assert verdict.read_only, verdict


@pytest.mark.parametrize("statement", WRITES)
def test_writes_are_caught_in_the_parsed_plan(spark, numbers, statement):
    from ptdm_spark.analysis import sql

    verdict = sql.classify(sql.parsed_plan(spark, statement))
    assert not verdict.read_only, verdict


@pytest.mark.parametrize("statement", READS + WRITES + ["(SELECT 1)", "  select n FROM ro.numbers"])
def test_the_select_shortcut_agrees_with_the_parsed_plan(spark, numbers, statement):
    """Over Spark Connect a statement that begins with SELECT skips the EXPLAIN round trip."""
    from ptdm_spark.analysis import sql

    if sql.starts_as_query(statement):
        assert sql.classify(sql.parsed_plan(spark, statement)).read_only
    else:
        assert not statement.lstrip(" (").upper().startswith("SELECT")


def test_sql_is_read_only_unless_write(ptdm, spark, numbers):
    for statement in ("DROP TABLE ro.numbers", "DELETE FROM ro.numbers",
                      "WITH x AS (SELECT 9 AS n) INSERT INTO ro.numbers SELECT * FROM x"):
        status, out = ptdm("sql", statement)
        assert status == 2, out
        assert out.splitlines() == [out.strip()] and "read-only unless you pass --write" in out, out
    assert spark.sql("SELECT count(*) FROM ro.numbers").first()[0] == 4  # nothing happened
    status, out = ptdm("sql", "SELECT count(*) AS n FROM ro.numbers", "--format", "csv")
    assert status == 0 and out.splitlines() == ["n", "4"], out
    status, out = ptdm("sql", "INSERT INTO ro.numbers VALUES (9)", "--write")
    assert status == 0, out
    assert spark.sql("SELECT count(*) FROM ro.numbers").first()[0] == 5


def test_a_missing_table_is_one_line(spark, overrides, capfd):
    """pyspark logged a 7.6 KB JSON record on stderr before the error; now only the error."""
    from ptdm_spark.cli import main

    argv = ["sql", *[a for o in overrides for a in ("--set", o)], "SELECT * FROM ro.no_such_table"]
    assert main(argv) == 2
    out, err = capfd.readouterr()
    assert out == ""
    assert err.splitlines() == [err.strip()] and "TABLE_OR_VIEW_NOT_FOUND" in err, err


def test_a_busy_catalog_is_one_line_at_once(spark, lakehouse, overrides):
    """This test process's JVM holds the embedded catalog; a second process is told so at once
    (Derby would retry for 85 s, then print thousands of lines)."""
    spark.catalog.listDatabases()  # the catalog is open
    t0 = time.monotonic()
    r = run_cli("sql", "SELECT 1", *[a for o in overrides for a in ("--set", o)], timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(r.stderr.splitlines()) == 1, r.stderr[-2000:]
    assert f"the catalog {lakehouse / '_catalog'} is in use by pid" in r.stderr
    assert "start the SQL endpoint (ptdm server start) or retry" in r.stderr
    assert took < 20, took


def test_hive_resources_stay_under_the_catalog(spark, cfg):
    """Hive's per-session <uuid>_resources folder went to the system temp folder and stayed there."""
    spark.catalog.listDatabases()
    assert (cfg.lakehouse.catalog_path / "resources").is_dir()


# --- the endpoint ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _watch_job_use_metastore(job: subprocess.Popen, meta_port: int) -> bool:
    """Whether the job's JVM (a child of the ptdm process) connected to the metastore service at
    some point while it ran (it does from its first catalog use, registering its tables, to exit)."""
    from ptdm_spark.analysis.server import metastore_clients
    from ptdm_spark.session import parent_pid

    while job.poll() is None:
        if any(job.pid in (pid, parent_pid(pid)) for pid in metastore_clients(meta_port, set())):
            return True
        time.sleep(0.2)
    return False


def _timed(*args: str, timeout: int = 300) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = run_cli(*args, timeout=timeout)
    return r, time.monotonic() - t0


@pytest.mark.slow
def test_sql_endpoint_start_query_while_a_job_writes_stop(tmp_path):
    from tests.imagefiles import encode, photo

    lh = tmp_path / "lh"
    lh.mkdir()
    port = _free_port()
    meta_port = next(p for p in iter(_free_port, None) if p != port)
    sets = [a for o in [*overrides_for(lh), f"sql.server.port={port}", f"sql.server.metastore_port={meta_port}",
                        "sql.server.driver_memory=1g"] for a in ("--set", o)]
    timings: dict[str, float] = {}

    r, timings["start"] = _timed("server", "start", *sets)
    try:
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.startswith(f"running at sc://127.0.0.1:{port} (pid "), r.stdout
        r = run_cli("server", "status", *sets)
        assert r.returncode == 0 and f"sc://127.0.0.1:{port}" in r.stdout and " since " in r.stdout, r.stdout
        r = run_cli("server", "start", *sets)
        assert r.returncode == 2 and "already running at" in r.stderr, r.stderr

        # Writes go through the endpoint too, with --write: a table of 37 rows.
        path = (lh / "ep" / "numbers").as_uri()
        r = run_cli("sql", "CREATE DATABASE ep", "--write", *sets)
        assert r.returncode == 0, r.stderr[-2000:]
        r = run_cli("sql", f"CREATE TABLE ep.numbers USING DELTA LOCATION '{path}' AS SELECT id FROM range(37)",
                    "--write", *sets)
        assert r.returncode == 0, r.stderr[-2000:]
        r = run_cli("sql", "DROP TABLE ep.numbers", *sets)
        assert r.returncode == 2 and "--write" in r.stderr, r.stderr

        count = ["sql", "SELECT count(*) AS n, hamming(5, -1) AS bits FROM ep.numbers", "--format", "csv", *sets]
        r, timings["query"] = _timed(*count)
        assert r.returncode == 0 and r.stdout.splitlines() == ["n,bits", "37,62"], r.stderr[-2000:]

        # A job writes the same dataset; analysts query it meanwhile, three at a time.
        folder = tmp_path / "imgs" / "cat"
        folder.mkdir(parents=True)
        for i in range(5):
            (folder / f"{i}.png").write_bytes(encode(photo(500 + i)))
        job = subprocess.Popen([*PTDM, "ingest", str(folder.parent), "--dataset", "ep", *sets], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        during, rounds = [], 0
        try:
            with ThreadPoolExecutor(4) as pool:
                job_seen = pool.submit(_watch_job_use_metastore, job, meta_port)
                while job.poll() is None and rounds < 4:
                    results = [f.result() for f in [pool.submit(_timed, *count) for _ in range(3)]]
                    for res, took in results:
                        assert res.returncode == 0 and res.stdout.splitlines() == ["n,bits", "37,62"], res.stderr[-2000:]
                        during.append(took)
                    rounds += 1
                    if job.poll() is None:
                        timings["rounds_inside_job"] = timings.get("rounds_inside_job", 0) + 1
            out = job.communicate(timeout=600)[0]
        finally:
            job.kill()
        assert job.returncode == 0, out[-3000:]
        assert timings.get("rounds_inside_job", 0) >= 1, "the job ended before a round of queries did"
        assert job_seen.result(), "the job never reached the catalog through the metastore service"
        timings["during_job_max"] = max(during)

        # The job registered its tables through the endpoint's metastore: the endpoint sees them.
        r = run_cli("sql", "SELECT count(*) AS n FROM ep.raw_images", "--format", "csv", *sets)
        assert r.returncode == 0 and r.stdout.splitlines() == ["n", "5"], r.stderr[-2000:]
        r = run_cli("tables", "ep", *sets)
        assert r.returncode == 0 and "raw_images" in r.stdout, r.stderr[-2000:]
        r = run_cli("history", "ep", "raw_images", *sets)
        assert r.returncode == 0 and "ingest" in r.stdout, r.stderr[-2000:]

        # While a process reaches the catalog through the metastore, stop refuses (this test
        # process holds a connection to it here).
        with socket.create_connection(("127.0.0.1", meta_port)):
            time.sleep(0.2)
            r = run_cli("server", "stop", *sets)
        assert r.returncode == 2 and "in use through the endpoint by pid" in r.stderr, r.stderr
        assert "--force" in r.stderr and len(r.stderr.splitlines()) == 1
    finally:
        r, timings["stop"] = _timed("server", "stop", *sets)
    assert r.returncode == 0 and "stopped the endpoint" in r.stdout, r.stderr
    r = run_cli("server", "status", *sets)
    assert r.returncode == 3 and r.stdout.startswith("not running"), r.stdout
    assert not (lh / "_catalog" / "server" / "server.json").exists()

    # No endpoint: the same query in-process, on the catalog the metastore service kept (asked
    # for the endpoint by name, it says that none answers, then answers anyway).
    r, timings["in_process_query"] = _timed(*count, "--remote", f"sc://127.0.0.1:{port}")
    assert r.returncode == 0 and r.stdout.splitlines() == ["n,bits", "37,62"], r.stderr[-2000:]
    assert f"note: no SQL endpoint answers at sc://127.0.0.1:{port}; running in-process" in r.stderr
    print("endpoint timings (s):", {k: round(v, 1) for k, v in timings.items()})
