"""``ptdm erase`` (takedown, right to be forgotten) and ``ptdm erase --verify`` (proof of absence)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError

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


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
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
