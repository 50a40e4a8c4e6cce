"""Protection commands: ``ptdm backup`` and ``ptdm restore``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    handlers: dict[str, Callable[..., int]] = {}

    p = add("backup", "copy every table of a dataset, checksummed and incremental, to a backup location",
            "Copy all the Delta tables of a dataset as they are at one moment (each table's version is pinned "
            "before anything is copied): the _delta_log entries up to that version and every data file under "
            "the table, with a SHA-256 per file, to URI (a local folder or hdfs://, on either side). Files are "
            "stored once, by their SHA-256: a later backup into the same URI copies only the files that are "
            "new. The manifest (URI/manifests/DATASET/BACKUP_ID.json: tables, versions, catalog names, "
            "files, sizes, checksums) is written last; the backup id is the run id.\n\n"
            "  ptdm backup --dataset fashion --to /backups/lakehouse\n"
            "  ptdm backup --dataset fashion --to hdfs://namenode:9000/backups/lakehouse")
    base.dataset_arg(p)
    p.add_argument("--to", required=True, metavar="URI", help="backup location: local folder or hdfs:// URI")
    handlers["backup"] = _cmd_backup

    p = add("restore", "bring a dataset back from a backup, or roll one table back to a version",
            "From a backup (--from URI): check the manifest and every file's presence, size and SHA-256 "
            "first (a damaged or incomplete backup stops with one line, exit 1, nothing changed), then copy "
            "the tables back and register them in the catalog, as dataset NEW with --as. The newest backup of "
            "the dataset is used unless --backup ID names another. An existing dataset's tables are replaced "
            "only with --overwrite.\n"
            "One table (--table T --version N): Delta's RESTORE TABLE ... TO VERSION AS OF N, a new commit "
            "whose rows are those of version N (the versions in between stay in the history).\n\n"
            "  ptdm restore --dataset fashion --from /backups/lakehouse\n"
            "  ptdm restore --dataset fashion --from /backups/lakehouse --as fashion_copy\n"
            "  ptdm restore --dataset fashion --from hdfs://namenode:9000/backups/lakehouse "
            "--backup 20261201T030000Z-backup-1a2b3c4d --overwrite\n"
            "  ptdm restore --dataset fashion --table images --version 3")
    base.dataset_arg(p)
    p.add_argument("--from", dest="source", metavar="URI", help="the backup location")
    p.add_argument("--as", dest="target", metavar="NEW", help="restore as this dataset name")
    p.add_argument("--backup", metavar="ID", help="this backup (default: the newest of the dataset)")
    p.add_argument("--overwrite", action="store_true", help="replace the tables of an existing dataset")
    p.add_argument("--table", metavar="T", help="roll this table back (with --version)")
    p.add_argument("--version", type=int, metavar="N", help="the table version to roll back to")
    handlers["restore"] = _cmd_restore
    return handlers


def _fail(command: str, exc: Exception) -> int:
    print(f"ptdm {command}: error: {exc}", file=sys.stderr, flush=True)
    return 1


def _cmd_backup(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta
    from ptdm_spark.protect import backup

    delta.check_dataset_name(args.dataset)
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, args.dataset)
    try:
        m = backup.run(spark, cfg, args.dataset, args.to, argv)
    except backup.BackupError as exc:
        return _fail("backup", exc)
    t = m["totals"]
    print(f"backup {m['backup_id']} of {args.dataset}: {t['tables']} table(s), {t['files']} file(s), "
          f"{t['bytes'] / 1e6:,.1f} MB; copied {t['copied_files']} file(s), {t['copied_bytes'] / 1e6:,.1f} MB")
    return 0


def _cmd_restore(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta
    from ptdm_spark.protect import restore
    from ptdm_spark.protect.backup import BackupError

    delta.check_dataset_name(args.dataset)
    table_mode = args.table is not None or args.version is not None
    if table_mode:
        if args.table is None or args.version is None:
            raise UsageError("--table and --version go together: ptdm restore --dataset D --table T --version N")
        if args.source or args.target or args.backup or args.overwrite:
            raise UsageError("--table/--version roll back one table in place: no --from, --as, --backup or --overwrite")
    elif not args.source:
        raise UsageError("expected --from URI (a backup) or --table T --version N "
                         "(e.g. ptdm restore --dataset fashion --from /backups/lakehouse)")
    if args.target:
        delta.check_dataset_name(args.target)
    spark = base.session(cfg)
    try:
        if table_mode:
            base.require_dataset(spark, cfg, args.dataset)
            out = restore.table_version(spark, cfg, args.dataset, args.table, args.version, argv)
            print(f"restore: {args.dataset}.{args.table} rolled back to version {args.version} "
                  f"(new version {out['version']})")
            return 0
        out = restore.from_backup(spark, cfg, args.dataset, args.source, args.target, args.backup,
                                  args.overwrite, argv)
    except BackupError as exc:
        return _fail("restore", exc)
    target = args.target or args.dataset
    print(f"restore: backup {out['backup_id']} -> dataset {target}: {out['tables']} table(s), {out['files']} "
          f"file(s), {out['bytes'] / 1e6:,.1f} MB (" + ", ".join(f"{t}@{v}" for t, v in sorted(out['versions'].items()))
          + ")")
    return 0
