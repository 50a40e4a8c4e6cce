"""The ``ptdm`` command.

``ptdm ingest|process|dedupe|curate|run`` run the pipeline's stages (the same code as
``spark-submit jobs/<stage>.py``); ``ptdm sql``, ``ptdm tables`` and ``ptdm history`` are for
analysts; ``ptdm spark-conf`` prints the Spark properties for ``spark-sql``/``spark-submit``.

Misuse (a missing path, a bad config key, an unknown dataset) prints one line and exits 2
before any table is touched.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ptdm_spark import __version__
from ptdm_spark.config import PROFILES, Config, load_config
from ptdm_spark.errors import UsageError

STAGES = ("ingest", "process", "dedupe", "curate")

EPILOG = """\
examples:
  ptdm setup                          # once after pip install: the Delta jars (needs Maven)
  ptdm run /usr/share/datasets/fashion-mnist --dataset fashion --conf fashion-mnist
  ptdm run ~/photos --dataset photos --master local[4] --conf spark.driver.maxResultSize=2g
  ptdm ingest ~/photos --dataset photos --labels dirname
  ptdm sql "SELECT label, count(*) FROM fashion.curated GROUP BY label ORDER BY label"
  ptdm history fashion images
  spark-sql --properties-file <(ptdm spark-conf)
"""


# spark-submit's options that ptdm does not take, and the Spark property each one sets: a user who
# types one gets a one-line hint to the ptdm way instead of argparse's "unrecognized arguments".
SUBMIT_OPTIONS = {
    "--deploy-mode": "spark.submit.deployMode",
    "--name": "spark.app.name",
    "--jars": "spark.jars",
    "--packages": "spark.jars.packages",
    "--repositories": "spark.jars.repositories",
    "--py-files": "spark.submit.pyFiles",
    "--files": "spark.files",
    "--archives": "spark.archives",
    "--properties-file": None,
    "--driver-memory": "spark.driver.memory",
    "--driver-cores": "spark.driver.cores",
    "--driver-java-options": "spark.driver.extraJavaOptions",
    "--driver-class-path": "spark.driver.extraClassPath",
    "--executor-memory": "spark.executor.memory",
    "--executor-cores": "spark.executor.cores",
    "--num-executors": "spark.executor.instances",
    "--total-executor-cores": "spark.cores.max",
    "--queue": "spark.yarn.queue",
    "--principal": "spark.kerberos.principal",
    "--keytab": "spark.kerberos.keytab",
}


def submit_hint(option: str) -> str | None:
    """One line for a spark-submit option ptdm does not take (None for any other option)."""
    name = option.split("=", 1)[0]
    if name not in SUBMIT_OPTIONS:
        return None
    if name == "--deploy-mode":
        return ("--deploy-mode: ptdm runs the driver in this process; for spark-submit's options use "
                "scripts/submit.sh STAGE --deploy-mode ... -- ARGS")
    if name == "--driver-memory":
        return "--driver-memory is a spark-submit option: use --set spark.driver_memory=VALUE (e.g. 8g)"
    if name == "--properties-file":
        return ("--properties-file is a spark-submit option: put the properties under spark.conf in a YAML file "
                "and pass --conf FILE")
    return f"{name} is a spark-submit option: use --conf {SUBMIT_OPTIONS[name]}=VALUE"


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 (argparse's own code)."""

    def error(self, message: str) -> None:  # noqa: D102
        if message.startswith("unrecognized arguments:"):
            hints = [h for h in map(submit_hint, message.split(":", 1)[1].split()) if h]
            if hints:
                self.exit(2, f"{self.prog}: error: {hints[0]}\n")
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--profile", default="local", choices=PROFILES,
                   help="config profile layered on the packaged base.yaml (default: local)")
    g.add_argument("--conf", action="append", default=[], metavar="PATH|NAME|spark.KEY=VALUE",
                   help="extra YAML config layered on top, or the name of a packaged dataset config "
                        "(e.g. fashion-mnist); spark.KEY=VALUE sets a Spark property, as with "
                        "spark-submit (repeatable)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one config key, e.g. --set lakehouse.root=/data/lh (repeatable)")
    g.add_argument("--master", metavar="URL",
                   help="Spark master, as with spark-submit: local[4], spark://host:7077, yarn ... "
                        "(= --set spark.master=URL)")


def spark_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Split ``--conf`` into YAML files and ``spark.KEY=VALUE`` pairs; returns (files, overrides).

    The pairs and ``--master`` become ``--set`` overrides of ``spark.conf`` / ``spark.master``,
    applied after the ``--set`` items, so they reach the session's Spark conf verbatim.

    Raises:
        UsageError: ``--conf spark.KEY`` without a value.
    """
    files, sets = [], list(args.overrides)
    for item in args.conf:
        key, eq, value = item.partition("=")
        if key.startswith("spark.") and eq:
            sets.append(f"spark.conf.{key.strip()}={json.dumps(value)}")
        elif item.startswith("spark.") and not os.path.exists(item):
            raise UsageError(f"--conf {item}: expected spark.KEY=VALUE (a Spark property) or a YAML file")
        else:
            files.append(item)
    if args.master:
        sets.append(f"spark.master={json.dumps(args.master)}")
    return files, sets


def _dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help="dataset name: tables go to <lakehouse.root>/NAME/ and catalog database NAME")


def _sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder, archive (tar/zip), IDX or CIFAR batch file; local path or hdfs:// URI")
    p.add_argument("--labels", default=None, metavar="dirname|none|MANIFEST",
                   help="labels from the parent folder name (dirname, default), none, or a manifest "
                        "file (csv, jsonl or parquet with columns path and label)")


def _remote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote", default=None, metavar="sc://HOST:PORT|local",
                   help="the SQL endpoint to ask (default: sql.remote, else this lakehouse's endpoint when it "
                        "runs, else in-process); local = always in-process")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ptdm",
        description="ptdm-spark: ingest, validate, clean, normalize and deduplicate image datasets "
                    "into versioned Delta tables with Apache Spark.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ptdm-spark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        _common(p)
        return p

    p = add("ingest", "read sources into raw_images (bronze)",
            "Read folders, archives, IDX and CIFAR files into <dataset>/raw_images: one row per source "
            "object with its bytes and SHA-256. Unreadable or oversized objects go to rejects. "
            "Rerunning on the same sources adds nothing.")
    _sources(p)
    _dataset(p)
    p = add("process", "decode, validate, score and normalize into images (silver)",
            "Decode every new raw image, validate it (rejects get a reason code), compute quality "
            "scores and perceptual hashes, normalize to 8-bit RGB and re-encode into <dataset>/images.")
    _dataset(p)
    p = add("dedupe", "find duplicate images",
            "Group images with identical normalized pixels (method pixel) and near duplicates "
            "(method phash: pHashes within dedupe.phash.max_distance bits, checked on dHash and on a "
            "16x16 colour thumbnail; every member within member_max_distance pHash bits and the "
            "colour limit of its group's kept image, so chains never link unlike images). Keep one "
            "per group (largest original resolution, then smallest image_id) and record the others "
            "in <dataset>/duplicates. Only new pHashes are searched, against all.")
    _dataset(p)
    p = add("curate", "build the curated table with splits (gold)",
            "Kept images (not duplicates, no excluded quality flag) with label and a deterministic "
            "train/val/test split into <dataset>/curated.")
    _dataset(p)
    p = add("run", "all stages in order: ingest, process, dedupe, curate",
            "Run ingest, process, dedupe and curate on SOURCE... and print the accounting.")
    _sources(p)
    _dataset(p)

    p = add("upload", "copy a local folder of images into HDFS (WebHDFS; parallel, resumable)",
            "Copy every file under LOCAL_DIR to HDFS_DIR over WebHDFS (landing.webhdfs_url). Files already "
            "there with the same size are skipped, so a rerun finishes an interrupted upload. Then: "
            "ptdm ingest hdfs://.../HDFS_DIR --dataset NAME")
    p.add_argument("local_dir", metavar="LOCAL_DIR")
    p.add_argument("hdfs_dir", metavar="HDFS_DIR", help="hdfs://host:port/path or /path")
    p = add("sql", "run a Spark SQL query and print the result",
            "Run QUERY against the catalog (databases = datasets) and print the rows. Read-only unless "
            "--write: statements that write, drop or alter (INSERT, DELETE, DROP, OPTIMIZE, VACUUM...) are "
            "refused. Answered by the SQL endpoint when it runs (ptdm server start), else in-process.")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--write", action="store_true",
                   help="allow statements that change data or the catalog")
    _remote(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default, readable), csv or json (one object per line)")
    p.add_argument("--limit", type=int, default=1000, metavar="N",
                   help="print at most N rows (default 1000; 0 = all)")
    p = add("tables", "list datasets, tables, versions and row counts",
            "List every dataset's tables with their current Delta version and row count.")
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="only this dataset")
    _remote(p)
    p = add("history", "show the Delta history of a dataset's tables",
            "Show each commit of DATASET's tables: version, time, operation, run id and job.")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("table", nargs="?", metavar="TABLE", help="only this table")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="commits per table (default 20)")
    _remote(p)
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
            "ptdm command finds them. Not needed in a checkout set up by scripts/setup.sh (.jars/). "
            "Without Maven: pass --conf spark.jars.packages=COORDINATE to each command instead.")
    p.add_argument("--dir", metavar="DIR", help="fetch into DIR instead (then set PTDM_JARS_DIR=DIR)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ptdm`` and of ``jobs/*.py``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        files, overrides = spark_overrides(args)
        cfg = load_config(args.profile, files, overrides)
        return COMMANDS[args.command](args, cfg, argv)
    except UsageError as exc:
        print(f"ptdm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ptdm {args.command}: interrupted", file=sys.stderr)
        return 130


def _session(cfg: Config):
    from ptdm_spark.session import get_session

    return get_session(cfg.spark, cfg.lakehouse)


# --- stages ------------------------------------------------------------------------------------


def _cmd_stage(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark import stages

    return stages.run_command(args.command, args, cfg, argv, _session)


# --- analyst commands --------------------------------------------------------------------------


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
        raise UsageError(f"SQL syntax: {_first_line(exc)}") from None
    except AnalysisException as exc:
        raise UsageError(_first_line(exc)) from None
    print_rows(df.columns, rows, args.format)
    return 0


def _cmd_tables(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis import sql
    from ptdm_spark.schemas import TABLES

    spark, _ = sql.analyst_session(cfg, args.remote)
    datasets = [d.name for d in spark.catalog.listDatabases() if d.name != "default"]
    if args.dataset:
        _require_dataset(spark, cfg, args.dataset)
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
    print_rows(["dataset", "table", "version", "rows", "path"], rows, "table")
    return 0


def _cmd_history(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis import sql
    from ptdm_spark.schemas import TABLES

    if args.table and args.table not in TABLES:
        raise UsageError(f"unknown table {args.table!r} (tables: {', '.join(TABLES)})")
    spark, _ = sql.analyst_session(cfg, args.remote)
    _require_dataset(spark, cfg, args.dataset)
    rows = []
    for table in [args.table] if args.table else TABLES:
        path = cfg.lakehouse.table_path(args.dataset, table)
        hist = sql.history(spark, path, args.limit)
        if hist is None:
            if args.table:
                raise UsageError(f"{args.dataset}.{table} does not exist yet at {path}")
            continue
        for h in hist:
            meta = _json_or_empty(h["userMetadata"])
            metrics = h["operationMetrics"] or {}
            written = metrics.get("numOutputRows") or metrics.get("numTargetRowsInserted") or ""
            rows.append({
                "table": table, "version": h["version"], "timestamp": str(h["timestamp"])[:19],
                "operation": h["operation"], "rows_written": written,
                "run_id": meta.get("run_id", ""), "job": meta.get("job", ""),
            })
    print_rows(["table", "version", "timestamp", "operation", "rows_written", "run_id", "job"], rows, "table")
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


def _cmd_upload(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import landing

    lc = cfg.landing
    res = landing.upload(args.local_dir, args.hdfs_dir, lc.webhdfs_url, lc.user or landing.default_user(), lc.workers)
    print(f"upload: {res.files} files: {res.uploaded} copied ({res.bytes / 1e6:.1f} MB), "
          f"{res.skipped} already there, {res.failed} failed")
    return 1 if res.failed else 0


def _cmd_spark_conf(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.session import SQL_FUNCTIONS, spark_properties

    if args.functions:
        print(";\n".join(SQL_FUNCTIONS) + ";")
        return 0
    for key, value in spark_properties(cfg.spark, cfg.lakehouse).items():
        print(f"{key} {value}")
    return 0


def _cmd_setup(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from pathlib import Path

    from ptdm_spark import jars

    if not args.dir:
        found, have = jars.find()
        if have:
            print(f"setup: Delta jars for {jars.coordinate()} found in {found}; nothing to do")
            return 0
    dest = Path(args.dir).expanduser() if args.dir else jars.cache_dir()
    jars.fetch(dest)
    return 0


def _require_dataset(spark: Any, cfg: Config, dataset: str) -> None:
    from ptdm_spark.analysis import sql
    from ptdm_spark.io import delta

    delta.check_dataset_name(dataset)
    if sql.version(spark, cfg.lakehouse.table_path(dataset, "raw_images")) is None and not any(
        d.name == dataset for d in spark.catalog.listDatabases()
    ):
        raise UsageError(f"unknown dataset {dataset!r}: nothing under {cfg.lakehouse.root_uri}/{dataset} "
                         f"(run: ptdm ingest SOURCE --dataset {dataset})")


COMMANDS: dict[str, Callable[[argparse.Namespace, Config, list[str]], int]] = {
    **{s: _cmd_stage for s in (*STAGES, "run")},
    "sql": _cmd_sql,
    "tables": _cmd_tables,
    "history": _cmd_history,
    "spark-conf": _cmd_spark_conf,
    "server": _cmd_server,
    "upload": _cmd_upload,
    "setup": _cmd_setup,
}


# --- output ------------------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _json_or_empty(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cell(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    return value


def print_rows(columns: Sequence[str], rows: list[dict[str, Any]], fmt: str, out=None) -> None:
    """Print rows as a readable table, CSV, or JSON lines (binary cells become ``<N bytes>``)."""
    out = out or sys.stdout
    if fmt == "json":
        for r in rows:
            out.write(json.dumps({c: _cell(r.get(c)) for c in columns}, default=str) + "\n")
        return
    if fmt == "csv":
        w = csv.writer(out)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _cell(r.get(c)) for c in columns])
        return
    cells = [[_text(_cell(r.get(c))) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out.write(" | ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("-+-".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(" | ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() + "\n")
    out.write(f"({len(rows)} row{'s' if len(rows) != 1 else ''})\n")


def _text(value: Any, width: int = 80) -> str:
    s = "NULL" if value is None else str(value)
    s = s.replace("\n", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


if __name__ == "__main__":
    sys.exit(main())
