"""What every ``ptdm`` command group shares: the one-line-error parser, the common options
(``--profile/--conf/--set/--master``), the Spark session, and how rows are printed."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ptdm_spark.config import PROFILES, Config
from ptdm_spark.errors import UsageError

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


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 (argparse's own code)."""

    def error(self, message: str) -> None:  # noqa: D102
        if message.startswith("unrecognized arguments:"):
            hints = [h for h in map(submit_hint, message.split(":", 1)[1].split()) if h]
            if hints:
                self.exit(2, f"{self.prog}: error: {hints[0]}\n")
        self.exit(2, f"{self.prog}: error: {message}\n")


def common(p: argparse.ArgumentParser) -> None:
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


def dataset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help="dataset name: tables go to <lakehouse.root>/NAME/ and catalog database NAME")


def sources_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder, archive (tar/zip), IDX or CIFAR batch file; local path or hdfs:// URI")
    p.add_argument("--labels", default=None, metavar="dirname|none|MANIFEST",
                   help="labels from the parent folder name (dirname, default), none, or a manifest "
                        "file (csv, jsonl or parquet with columns path and label)")


def remote_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remote", default=None, metavar="sc://HOST:PORT|local",
                   help="the SQL endpoint to ask (default: sql.remote, else this lakehouse's endpoint when it "
                        "runs, else in-process); local = always in-process")


def session(cfg: Config):
    """The job's Spark session (local or a cluster, Delta and the catalog configured)."""
    from ptdm_spark.session import get_session

    return get_session(cfg.spark, cfg.lakehouse, cfg.security.encryption)


def say(command: str, line: str) -> None:
    """A progress or status line of ``ptdm COMMAND`` on stderr."""
    print(f"ptdm {command}: {line}", file=sys.stderr, flush=True)


def require_dataset(spark: Any, cfg: Config, dataset: str, reads_data: bool = True) -> None:
    """Stop with one line unless the dataset exists; and, for a command that reads the tables'
    rows (``reads_data``: not the log-only ``tables``/``history``, nor ``backup``/``restore``,
    which copy files as bytes), when its tables are encrypted and this command has no key —
    before any Spark job, instead of Spark's task-failure log."""
    from ptdm_spark.io import delta
    from ptdm_spark.protect.encryption import check_dataset_readable

    delta.check_dataset_name(dataset)
    raw = cfg.lakehouse.table_path(dataset, "raw_images")
    # the table's newest commit file (a listing): DESCRIBE HISTORY cost a Spark job, ~5 s per command
    if delta.table_version(spark, raw) is None and not any(
        d.name == dataset for d in spark.catalog.listDatabases()
    ):
        raise UsageError(f"unknown dataset {dataset!r}: nothing under {cfg.lakehouse.root_uri}/{dataset} "
                         f"(run: ptdm ingest SOURCE --dataset {dataset})")
    if reads_data:
        check_dataset_readable(spark, cfg.security.encryption, lambda t: cfg.lakehouse.table_path(dataset, t))



# --- output ------------------------------------------------------------------------------------


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def json_or_empty(text: str | None) -> dict[str, Any]:
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


