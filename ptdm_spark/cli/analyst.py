"""The analyst's commands: ``ptdm sql``, ``tables``, ``history``, the SQL endpoint (``server``),
``spark-conf`` for spark-sql/spark-submit, and ``setup`` (the Delta jars)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    p = add("sql", "run a Spark SQL query and print the result",
            "Run QUERY against the catalog (databases = datasets) and print the rows. Read-only unless "
            "--write: statements that write, drop or alter (INSERT, DELETE, DROP, OPTIMIZE, VACUUM...) are "
            "refused. Answered by the SQL endpoint when it runs (ptdm server start), else in-process.")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--write", action="store_true",
                   help="allow statements that change data or the catalog")
    base.remote_arg(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default, readable), csv or json (one object per line)")
    p.add_argument("--limit", type=int, default=1000, metavar="N",
                   help="print at most N rows (default 1000; 0 = all)")
    p = add("tables", "list datasets, tables, versions and row counts",
            "List every dataset's tables with their current Delta version and row count.")
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="only this dataset")
    base.remote_arg(p)
    p = add("history", "show the Delta history of a dataset's tables",
            "Show each commit of DATASET's tables: version, time, operation, run id and job.")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("table", nargs="?", metavar="TABLE", help="only this table")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="commits per table (default 20)")
    base.remote_arg(p)
    p = add("server", "start, stop or show the long-lived SQL endpoint (Spark Connect)",
            "The SQL endpoint: a Spark Connect server (sc://host:port) with Delta, ptdm's catalog and its SQL "
            "functions, plus a Hive metastore service that owns the catalog while it runs, so that jobs and "
            "queries share it. ptdm sql, tables and history use it when it runs. State, pids and logs: "
            "<catalog>/server/. Settings: sql.server.* (host, port, metastore_port, driver_memory).\n\n"
            "  ptdm server start\n  ptdm sql \"SELECT count(*) FROM fashion.curated\"\n  ptdm server status\n"
            "  ptdm server stop\n\nstatus exits 0 when the endpoint runs, 3 when it does not.")
    p.add_argument("action", choices=("start", "stop", "status"), metavar="start|stop|status",
                   help="start it (waits until it answers), stop it, or say where it runs and since when")
    p.add_argument("--force", action="store_true",
                   help="stop even while a job reaches the catalog through the endpoint (the job then fails)")
    p = add("spark-conf", "print the Spark properties ptdm uses (for spark-sql / spark-submit)",
            "Print ptdm's Spark properties in spark-defaults format, e.g.\n"
            "  spark-sql --properties-file <(ptdm spark-conf) -i <(ptdm spark-conf --functions)")
    p.add_argument("--functions", action="store_true",
                   help="print instead the SQL that defines ptdm's SQL functions (hamming), for spark-sql -i")
    p = add("setup", "fetch the Delta Lake jars for the installed pyspark (once, with Maven)",
            "Resolve io.delta:delta-spark_<Spark major.minor>_2.13 for the installed pyspark and delta-spark "
            "with Maven from Maven Central into the user cache (~/.cache/ptdm-spark/jars), where every "
            "ptdm command finds them; build ptdm-crypto.jar (encryption at rest) and the driver's class "
            "archive beside them (a short ptdm run whose JVM keeps the classes it loaded, ~250 MB: every "
            "later command starts a few seconds sooner). Not needed in a checkout set up by scripts/setup.sh "
            "(.jars/). Without Maven: pass --conf spark.jars.packages=COORDINATE to each command instead.")
    p.add_argument("--dir", metavar="DIR", help="fetch into DIR instead (then set PTDM_JARS_DIR=DIR)")
    return {"sql": _cmd_sql, "tables": _cmd_tables, "history": _cmd_history, "server": _cmd_server,
            "spark-conf": _cmd_spark_conf, "setup": _cmd_setup}


def _cmd_sql(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from pyspark.errors import AnalysisException, ParseException

    from ptdm_spark.analysis import sql

    spark, _ = sql.analyst_session(cfg, args.remote, args.query)
    if not args.write:
        sql.check_read_only(spark, args.query)
    try:
        df = spark.sql(args.query)
        limited = df.limit(args.limit) if args.limit > 0 else df
        rows = [r.asDict(recursive=True) for r in limited.collect()]
    except ParseException as exc:
        raise UsageError(f"SQL syntax: {base.first_line(exc)}") from None
    except AnalysisException as exc:
        raise UsageError(base.first_line(exc)) from None
    base.print_rows(df.columns, rows, args.format)
    return 0


def _cmd_tables(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis import sql
    from ptdm_spark.schemas import TABLES

    spark, _ = sql.analyst_session(cfg, args.remote)
    datasets = [d.name for d in spark.catalog.listDatabases() if d.name != "default"]
    if args.dataset:
        base.require_dataset(spark, cfg, args.dataset, reads_data=False)
        datasets = [args.dataset]
    rows = []
    for ds in sorted(datasets):
        registered = {t.name for t in spark.catalog.listTables(ds)}
        for table in [t for t in TABLES if t in registered]:
            path = cfg.lakehouse.table_path(ds, table)
            version = sql.version(spark, path)
            if version is None:
                continue
            rows.append({"dataset": ds, "table": table, "version": version, "rows": sql.count(spark, path),
                         "path": path})
    if not rows:
        print(f"no tables under {cfg.lakehouse.root_uri} (run: ptdm run SOURCE --dataset NAME)")
        return 0
    base.print_rows(["dataset", "table", "version", "rows", "path"], rows, "table")
    return 0


def _cmd_history(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis import sql
    from ptdm_spark.schemas import TABLES

    if args.table and args.table not in TABLES:
        raise UsageError(f"unknown table {args.table!r} (tables: {', '.join(TABLES)})")
    spark, _ = sql.analyst_session(cfg, args.remote)
    base.require_dataset(spark, cfg, args.dataset, reads_data=False)
    rows = []
    for table in [args.table] if args.table else TABLES:
        path = cfg.lakehouse.table_path(args.dataset, table)
        hist = sql.history(spark, path, args.limit)
        if hist is None:
            if args.table:
                raise UsageError(f"{args.dataset}.{table} does not exist yet at {path}")
            continue
        for h in hist:
            meta = base.json_or_empty(h["userMetadata"])
            metrics = h["operationMetrics"] or {}
            written = metrics.get("numOutputRows") or metrics.get("numTargetRowsInserted") or ""
            rows.append({
                "table": table, "version": h["version"], "timestamp": str(h["timestamp"])[:19],
                "operation": h["operation"], "rows_written": written,
                "run_id": meta.get("run_id", ""), "job": meta.get("job", ""),
            })
    base.print_rows(["table", "version", "timestamp", "operation", "rows_written", "run_id", "job"], rows, "table")
    return 0


def _cmd_server(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis import server

    def say(line: str) -> None:
        print(f"ptdm server: {line}", file=sys.stderr, flush=True)

    if args.action == "status":
        st = server.status(cfg)
        print(st.describe())
        return 0 if st.running else 3
    if args.action == "stop":
        was = server.stop(cfg, force=args.force)
        print(f"stopped the endpoint at {was.state.get('url')} (pids {was.state.get('connect_pid')}, "
              f"{was.state.get('metastore_pid')})" if was else "not running: nothing to stop")
        return 0
    try:
        st = server.start(cfg, log=say)
    except server.ServerError as exc:
        print(f"ptdm server start: failed: {exc}", file=sys.stderr)
        return 1
    print(st.describe())
    return 0


def _cmd_spark_conf(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.session import SQL_FUNCTIONS, spark_properties

    if args.functions:
        print(";\n".join(SQL_FUNCTIONS) + ";")
        return 0
    from ptdm_spark.protect import encryption

    encryption.check(cfg.security.encryption)  # a bad key file: one line now, not a failed query later
    for key, value in spark_properties(cfg.spark, cfg.lakehouse, encryption=cfg.security.encryption).items():
        print(f"{key} {value}")
    return 0


def _cmd_setup(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from pathlib import Path

    from ptdm_spark import class_archive, jars

    if not args.dir:
        found, have = jars.find()
        if have and jars.crypto_up_to_date(found) and class_archive.up_to_date(found):
            print(f"setup: Delta jars for {jars.coordinate()}, {jars.CRYPTO_JAR} and the driver's class archive "
                  f"found in {found}; nothing to do")
            return 0
        if have:  # the encryption classes (security.encryption) and the class archive beside them
            jars.setup(found, fetch_jars=False)
            return 0
    jars.setup(Path(args.dir).expanduser() if args.dir else jars.cache_dir())
    return 0


