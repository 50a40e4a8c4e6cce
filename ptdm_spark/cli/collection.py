"""Collecting: ``ptdm collect`` (images from URL lists) and ``ptdm watch`` (a landing folder)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    p = add("collect", "download images from URL lists into raw_images (with a fetch log)",
            "Fetch every URL of the lists (CSV, JSON lines or Parquet files with a url column and optional "
            "label, split, license, caption columns; local or hdfs://) in Spark tasks, a host's URLs in one "
            "task so that collect.per_host_connections and collect.per_host_rate hold, with timeouts, retries "
            "with backoff (Retry-After honoured), a byte limit, redirects, content sniffing and X-Robots-Tag "
            "noai. Images land in <dataset>/raw_images (source_uri = the URL, provenance = final URL, status, "
            "ETag, Last-Modified, license, caption); every try is a row of fetch_log; failures are rejects "
            "(stage collect) with a reason code. A rerun fetches only what has not succeeded, is not a "
            "permanent failure (404, robots, not_image...) and has tries left (collect.max_attempts). Then: "
            "ptdm process / dedupe / curate --dataset NAME.\n\n"
            "  ptdm collect urls.parquet --dataset web\n"
            "  ptdm collect a.csv b.jsonl --dataset web --labels none --set collect.per_host_connections=2")
    p.add_argument("lists", nargs="+", metavar="URLS", help="URL list file(s): .csv, .jsonl or .parquet")
    base.dataset_arg(p)
    p.add_argument("--labels", choices=("auto", "column", "none"), default="auto",
                   help="labels from the list's label column (column), none, or auto (default): the column "
                        "when the list has one")
    p = add("watch", "ingest a landing folder continuously (Spark Structured Streaming)",
            "Watch SOURCE (a local or hdfs:// folder) and ingest every file that arrives into <dataset>/raw_images, "
            "micro-batch by micro-batch, with a checkpoint inside the dataset: a restarted watch goes on where it "
            "stopped, and a batch replayed after a crash adds nothing. Labels from the parent folder name (as "
            "ingest). Settings: watch.poll_seconds, watch.max_files_per_batch, watch.every. Ctrl-C stops.\n\n"
            "  ptdm watch /data/landing --dataset web --then process,dedupe,curate\n"
            "  ptdm watch hdfs://nn:8020/landing --dataset web --once")
    p.add_argument("source", metavar="SOURCE", help="the landing folder (local path or hdfs:// URI)")
    base.dataset_arg(p)
    p.add_argument("--once", action="store_true",
                   help="ingest what is there now, then stop (trigger availableNow)")
    p.add_argument("--then", default="", metavar="STAGES",
                   help="later stages to run after new images arrive, e.g. process,dedupe,curate")
    p.add_argument("--labels", choices=("dirname", "none"), default="dirname",
                   help="labels from the parent folder name (dirname, default) or none")
    return {"collect": _cmd_collect, "watch": _cmd_watch}


def _cmd_collect(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import delta, sources
    from ptdm_spark.pipeline import collect
    from ptdm_spark.pipeline.job import check_writable, job

    dataset = delta.check_dataset_name(args.dataset)
    for path in args.lists:
        if not sources.is_uri(path) and not os.path.exists(path):
            raise UsageError(f"no such URL list: {path}")
    spark = base.session(cfg)
    labels = args.labels
    if labels == "auto":
        first = sources.read_tabular(spark, args.lists[0], f"URL list {args.lists[0]}")
        labels = "column" if "label" in first.columns else "none"
    inputs = collect.CollectInputs.prepare(spark, args.lists, labels)
    check_writable(spark, cfg.lakehouse.table_path(dataset, "_staging"))
    with job(spark, cfg, "collect", dataset, argv) as run:
        collect.collect(spark, cfg, run, inputs)
    return 0


def _cmd_watch(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.cli.pipeline import STAGES
    from ptdm_spark.io import delta, sources
    from ptdm_spark.pipeline import watch
    from ptdm_spark.pipeline.job import check_writable, job

    dataset = delta.check_dataset_name(args.dataset)
    then = [s.strip() for s in args.then.split(",") if s.strip()]
    unknown = [s for s in then if s not in STAGES[1:]]
    if unknown:
        raise UsageError(f"--then {args.then}: {unknown[0]!r} is not one of process, dedupe, curate")
    if not sources.is_uri(args.source) and not os.path.isdir(args.source):
        raise UsageError(f"no such folder: {args.source}")
    spark = base.session(cfg)
    (src,) = sources.resolve(spark, [args.source])
    if not src.is_dir:
        raise UsageError(f"{args.source} is a file: watch takes a folder")
    check_writable(spark, cfg.lakehouse.table_path(dataset, "_staging"))
    with job(spark, cfg, "watch", dataset, argv) as run:
        watch.watch(spark, cfg, run, src, args.labels, args.once, then, argv)
    return 0
