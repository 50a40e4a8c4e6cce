"""``ptdm labels import|suspects`` (label corrections and the review queue) and ``ptdm augment``
(seeded augmented copies of the train split)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError

LABELS_EXAMPLES = """\
examples:
  ptdm labels suspects --dataset fashion --out review/fashion.csv     # + review/fashion.html
  # annotators edit the label column of review/fashion.csv, then:
  ptdm labels import review/fashion.csv --dataset fashion --source review-2026-12
  ptdm curate --dataset fashion                                        # curated uses the new labels
  ptdm sql "SELECT * FROM fashion.label_history ORDER BY changed_at DESC"

A corrections file (csv with a header, jsonl or parquet) names each image by image_id or by the
source_uri of one of its source objects, with label and, optionally, reason and annotator.
"""

AUGMENT_EXAMPLES = """\
examples:
  ptdm augment --dataset fashion --recipe basic                 # conf/augment/basic.yaml, train only
  ptdm augment --dataset fashion --recipe my.yaml --copies 4 --seed 7 --master local[4]
  ptdm sql "SELECT recipe, split, label, count(*) FROM fashion.augmented GROUP BY 1, 2, 3"
"""


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    p = add("labels", "fix labels: import corrections, list suspects for review",
            "import FILE: apply label corrections (every change kept in <dataset>/label_history; the label an "
            "image arrived with stays in images; ids that name no image are reported). suspects: write a review "
            "queue (CSV + an HTML page with thumbnails) of label conflicts, images whose sources disagree and "
            "outliers.\n\n" + LABELS_EXAMPLES)
    p.add_argument("action", choices=("import", "suspects"), help="import a corrections file, or list suspects")
    p.add_argument("file", nargs="?", metavar="FILE", help="import: the corrections file (csv, jsonl, parquet)")
    base.dataset_arg(p)
    p.add_argument("--source", metavar="NAME", help="import: where the corrections come from (default: the file's name)")
    p.add_argument("--out", metavar="FILE", help="suspects: the review CSV to write (local or hdfs://); "
                                                  "the HTML page goes beside it")
    p.add_argument("--limit", type=int, default=1000, metavar="N", help="suspects: at most N images (default 1000)")

    p = add("augment", "seeded augmented copies of curated images (train by default)",
            "Make COPIES augmented copies of every curated image of the chosen splits with a recipe of seeded "
            "operations (flip, rotate, random resized crop, colour jitter, noise, blur, JPEG) into "
            "<dataset>/augmented, with the parameters drawn, the source's id, split and label. The same recipe, "
            "seed and source give the same bytes on any partitioning; a rerun adds nothing.\n\n" + AUGMENT_EXAMPLES)
    base.dataset_arg(p)
    p.add_argument("--recipe", required=True, metavar="FILE|NAME",
                   help="a recipe YAML file, or a packaged recipe's name (basic)")
    p.add_argument("--copies", type=int, metavar="K", help="copies per image (default: the recipe's copies)")
    p.add_argument("--seed", type=int, metavar="N", help="seed (default: the recipe's seed)")
    p.add_argument("--splits", metavar="A,B", help="splits to augment (default: augment.splits, i.e. train)")
    return {"labels": _cmd_labels, "augment": _cmd_augment}


def _cmd_labels(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    import os

    from ptdm_spark.io import delta
    from ptdm_spark.pipeline import labels
    from ptdm_spark.pipeline.job import check_writable, job

    dataset = delta.check_dataset_name(args.dataset)
    if args.action == "import":
        if not args.file:
            raise UsageError("labels import: name the corrections FILE (csv, jsonl or parquet)")
        labels.check_file(args.file)
        source = args.source or os.path.basename(args.file.rstrip("/"))
    else:
        if args.file:
            raise UsageError(f"labels suspects: unexpected FILE {args.file!r} (use --out FILE)")
        if not args.out:
            raise UsageError("labels suspects: --out FILE is required (the review CSV to write)")
        if args.limit < 1:
            raise UsageError(f"--limit {args.limit}: must be at least 1")
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, dataset)
    if not delta.is_delta_table(spark, cfg.lakehouse.table_path(dataset, "images")):
        raise UsageError(f"dataset {dataset!r} has no images yet (run: ptdm process --dataset {dataset})")
    check_writable(spark, cfg.lakehouse.table_path(dataset, "_staging"))
    with job(spark, cfg, f"labels-{args.action}", dataset, argv) as run:
        if args.action == "import":
            labels.import_labels(spark, cfg, run, args.file, source)
        else:
            labels.suspects(spark, cfg, run, args.out, args.limit)
    return 0


def _cmd_augment(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta
    from ptdm_spark.pipeline import augment
    from ptdm_spark.pipeline.job import check_writable, job

    dataset = delta.check_dataset_name(args.dataset)
    inputs = None
    if "://" not in args.recipe:  # a local recipe is checked before Spark starts
        inputs = augment.AugmentInputs.prepare(None, cfg, args.recipe, args.seed, args.copies, args.splits)
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, dataset)
    if not delta.is_delta_table(spark, cfg.lakehouse.table_path(dataset, "curated")):
        raise UsageError(f"dataset {dataset!r} has no curated table yet (run: ptdm curate --dataset {dataset})")
    if inputs is None:
        inputs = augment.AugmentInputs.prepare(spark, cfg, args.recipe, args.seed, args.copies, args.splits)
    augment.check_splits(spark, cfg.lakehouse.table_path(dataset, "curated"), inputs.splits)
    check_writable(spark, cfg.lakehouse.table_path(dataset, "_staging"))
    with job(spark, cfg, "augment", dataset, argv) as run:
        augment.augment(spark, cfg, run, inputs)
    return 0
