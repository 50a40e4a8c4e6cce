"""Protection commands: ``ptdm backup`` and ``ptdm restore``; ``ptdm erase`` (takedown, right to be
forgotten) and ``ptdm erase --verify`` (proof of absence)."""

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
    handlers.update(_register_erase(add))
    return handlers


def _fail(command: str, exc: Exception) -> int:
    print(f"ptdm {command}: error: {exc}", file=sys.stderr, flush=True)
    return 1


def _cmd_backup(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta
    from ptdm_spark.protect import backup

    delta.check_dataset_name(args.dataset)
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, args.dataset, reads_data=False)
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
            base.require_dataset(spark, cfg, args.dataset, reads_data=False)
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


ERASE_EXAMPLES = """\
examples:
  ptdm erase --dataset photos --image-id 3f2a...c9 --reason "takedown request #112"
  ptdm erase --dataset photos --source-uri hdfs://nn:9000/landing/photos/alice/01.jpg --reason "GDPR art. 17" --dry-run
  ptdm erase --dataset photos --manifest takedown.csv --reason "licence withdrawn"   # columns image_id and/or source_uri
  ptdm erase --verify --dataset photos --image-id 3f2a...c9                         # exit 0: absent, 1: found
  ptdm sql "SELECT run_id, reason, user, erased_at, size(image_ids) FROM photos.erasures"

Erasing an image removes every row derived from it from every table (raw_images, rejects, fetch_log,
images, duplicates, label_conflicts, phash data no other image needs, splits, leakage, curated,
label_history, augmented copies, and the analyses of curated versions that held it), runs dedupe and
curate again (a duplicate group whose kept image was erased keeps its next best member), marks the
releases that held it amended, then VACUUMs with retention 0: time travel to any version before the
erasure then fails. An image id is the SHA-256 of the source bytes, so every object with the same
bytes goes too. The erasures table records ids, URIs, reason, user and time, never content.
"""


def _register_erase(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """``ptdm erase``: added by :func:`register`."""
    p = add("erase", "erase images from every table and file of a dataset, or verify they are gone",
            "Remove images and everything derived from them from a dataset, including the data files older "
            "Delta versions point to; with --verify, scan every Parquet file of the dataset for an image.\n\n"
            + ERASE_EXAMPLES)
    base.dataset_arg(p)
    p.add_argument("--image-id", nargs="+", action="extend", default=[], metavar="ID", dest="image_ids",
                   help="image id(s) to erase (64 hex digits, the SHA-256 of the source bytes)")
    p.add_argument("--source-uri", nargs="+", action="extend", default=[], metavar="URI", dest="source_uris",
                   help="source object(s) to erase, as raw_images.source_uri (a local path works too) or a URL")
    p.add_argument("--manifest", metavar="FILE",
                   help="a local file naming what to erase: csv/jsonl with image_id and/or source_uri, or one per line")
    p.add_argument("--reason", metavar="TEXT", help="why (required to erase; stored in erasures)")
    p.add_argument("--dry-run", action="store_true", help="print what would be erased and exit; change nothing")
    p.add_argument("--verify", action="store_true",
                   help="scan every Parquet file under the dataset for --image-id ID (exit 0 absent, 1 found)")
    return {"erase": _cmd_erase}


def _cmd_erase(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta
    from ptdm_spark.protect import erase

    delta.check_dataset_name(args.dataset)
    if args.verify:
        if len(args.image_ids) != 1 or args.source_uris or args.manifest:
            raise UsageError("--verify takes exactly one --image-id ID (and no --source-uri / --manifest)")
        erase.check_ids(args.image_ids)
        return _verify(args, cfg)
    ids, uris = list(args.image_ids), list(args.source_uris)
    if args.manifest:
        m_ids, m_uris = erase.read_manifest(args.manifest)
        ids, uris = ids + m_ids, uris + m_uris
    if not ids and not uris:
        raise UsageError("name what to erase: --image-id ID..., --source-uri URI... or --manifest FILE")
    if not (args.reason or "").strip():
        raise UsageError('--reason TEXT is required (e.g. --reason "takedown request #112"); it is stored in erasures')
    erase.check_ids(ids)
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, args.dataset)
    base.say("erase", f"resolving {len(ids)} id(s) and {len(uris)} URI(s) in dataset {args.dataset!r}")
    plan = erase.plan(spark, cfg, args.dataset, ids, uris)
    for line in erase.describe(plan):
        base.say("erase", line)
    if args.dry_run:
        print(f"erase (dry run): would erase {len(plan.image_ids)} image(s), {plan.objects} source object(s), "
              f"{sum(plan.rows.values())} row(s); nothing changed")
        return 0
    from ptdm_spark.pipeline.job import check_writable

    check_writable(spark, cfg.lakehouse.table_path(args.dataset, "_staging"))
    counts = erase.run(spark, cfg, plan, args.reason.strip(), argv)
    deleted = sum(v for k, v in counts.items() if k.startswith("deleted_"))
    print(f"erase: erased {len(plan.image_ids)} image(s), {plan.objects} source object(s) and {deleted} row(s) "
          f"from dataset {args.dataset} (run {counts['run_id']}); {counts['tables_vacuumed']} table(s) vacuumed: "
          "time travel to before this erasure now fails"
          + (f"; release(s) marked amended: {', '.join(plan.releases)}" if plan.releases else ""))
    return 0


def _verify(args: argparse.Namespace, cfg: Config) -> int:
    from ptdm_spark.protect import erase

    spark = base.session(cfg)
    base.require_dataset(spark, cfg, args.dataset)
    needles, source = erase.needles(spark, cfg, args.dataset, args.image_ids[0])
    if source == "none":
        base.say("erase", f"image {needles.image_id} is neither in images nor in erasures of {args.dataset!r}: "
                          "scanning for its id and original bytes only")
    scan = erase.verify(spark, cfg, args.dataset, needles)
    for hit in scan.hits:
        print(f"FOUND {hit}")
    verdict = (f"FOUND in {len({h.rsplit(': ', 1)[0] for h in scan.hits})} file(s)" if scan.hits else "absent")
    print(f"erase --verify: image {needles.image_id} {verdict}: {scan.files} Parquet file(s) of dataset "
          f"{args.dataset} scanned for its id and {len(needles.digests)} byte hash(es)"
          + (f" ({len(scan.skipped)} file(s) of the erasures table skipped: it records the id by design)"
             if scan.skipped else ""))
    return 1 if scan.hits else 0
