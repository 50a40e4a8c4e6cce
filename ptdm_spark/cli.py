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
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ptdm_spark import __version__
from ptdm_spark.config import PROFILES, Config, load_config
from ptdm_spark.errors import UsageError

STAGES = ("ingest", "process", "dedupe", "curate")

EPILOG = """\
examples:
  ptdm run /usr/share/datasets/fashion-mnist --dataset fashion --conf conf/datasets/fashion-mnist.yaml
  ptdm ingest ~/photos --dataset photos --labels dirname
  ptdm sql "SELECT label, count(*) FROM fashion.curated GROUP BY label ORDER BY label"
  ptdm history fashion images
  spark-sql --properties-file <(ptdm spark-conf)
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 (argparse's own code)."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}\n")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("configuration")
    g.add_argument("--profile", default="local", choices=PROFILES,
                   help="config profile layered on conf/base.yaml (default: local)")
    g.add_argument("--conf", action="append", default=[], metavar="PATH",
                   help="extra YAML config layered on top (repeatable)")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one key, e.g. --set lakehouse.root=/data/lh (repeatable)")


def _dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help="dataset name: tables go to <lakehouse.root>/NAME/ and catalog database NAME")


def _sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder, archive (tar/zip), IDX or CIFAR batch file; local path or hdfs:// URI")
    p.add_argument("--labels", default=None, metavar="dirname|none|MANIFEST",
                   help="labels from the parent folder name (dirname, default), none, or a manifest "
                        "file (csv, jsonl or parquet with columns path and label)")


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
            "Run QUERY against the catalog (databases = datasets) and print the rows.")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default, readable), csv or json (one object per line)")
    p.add_argument("--limit", type=int, default=1000, metavar="N",
                   help="print at most N rows (default 1000; 0 = all)")
    p = add("tables", "list datasets, tables, versions and row counts",
            "List every dataset's tables with their current Delta version and row count.")
    p.add_argument("dataset", nargs="?", metavar="DATASET", help="only this dataset")
    p = add("history", "show the Delta history of a dataset's tables",
            "Show each commit of DATASET's tables: version, time, operation, run id and job.")
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("table", nargs="?", metavar="TABLE", help="only this table")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="commits per table (default 20)")
    p = add("spark-conf", "print the Spark properties ptdm uses (for spark-sql / spark-submit)",
            "Print ptdm's Spark properties in spark-defaults format, e.g.\n"
            "  spark-sql --properties-file <(ptdm spark-conf) -i <(ptdm spark-conf --functions)")
    p.add_argument("--functions", action="store_true",
                   help="print instead the SQL that defines ptdm's SQL functions (hamming), for spark-sql -i")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ptdm`` and of ``jobs/*.py``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.profile, args.conf, args.overrides)
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

    spark = _session(cfg)
    try:
        df = spark.sql(args.query)
    except ParseException as exc:
        raise UsageError(f"SQL syntax: {_first_line(exc)}") from None
    except AnalysisException as exc:
        raise UsageError(_first_line(exc)) from None
    limited = df.limit(args.limit) if args.limit > 0 else df
    rows = [r.asDict(recursive=True) for r in limited.collect()]
    print_rows(df.columns, rows, args.format)
    return 0


def _cmd_tables(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta
    from ptdm_spark.schemas import TABLES

    spark = _session(cfg)
    datasets = [d.name for d in spark.catalog.listDatabases() if d.name != "default"]
    if args.dataset:
        _require_dataset(spark, cfg, args.dataset)
        datasets = [args.dataset]
    rows = []
    for ds in sorted(datasets):
        for table in TABLES:
            path = cfg.lakehouse.table_path(ds, table)
            version = delta.table_version(spark, path)
            if version is None:
                continue
            count = spark.read.format("delta").load(path).count()
            rows.append({"dataset": ds, "table": table, "version": version, "rows": count, "path": path})
    if not rows:
        print(f"no tables under {cfg.lakehouse.root_uri} (run: ptdm run SOURCE --dataset NAME)")
        return 0
    print_rows(["dataset", "table", "version", "rows", "path"], rows, "table")
    return 0


def _cmd_history(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from delta.tables import DeltaTable

    from ptdm_spark.io import delta
    from ptdm_spark.schemas import TABLES

    spark = _session(cfg)
    _require_dataset(spark, cfg, args.dataset)
    if args.table and args.table not in TABLES:
        raise UsageError(f"unknown table {args.table!r} (tables: {', '.join(TABLES)})")
    rows = []
    for table in [args.table] if args.table else TABLES:
        path = cfg.lakehouse.table_path(args.dataset, table)
        if not delta.is_delta_table(spark, path):
            if args.table:
                raise UsageError(f"{args.dataset}.{table} does not exist yet at {path}")
            continue
        hist = DeltaTable.forPath(spark, path).history(args.limit).collect()
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


def _require_dataset(spark: Any, cfg: Config, dataset: str) -> None:
    from ptdm_spark.io import delta

    delta.check_dataset_name(dataset)
    if not delta.is_delta_table(spark, cfg.lakehouse.table_path(dataset, "raw_images")) and not any(
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
    "upload": _cmd_upload,
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
