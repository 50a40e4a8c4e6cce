"""``ptdm ingest|process|dedupe|curate|run`` (the pipeline's stages, the same code as
``spark-submit jobs/<stage>.py``) and ``ptdm upload`` (a local folder into HDFS)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config

STAGES = ("ingest", "process", "dedupe", "curate")


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    p = add("ingest", "read sources into raw_images (bronze)",
            "Read folders, archives, IDX and CIFAR files into <dataset>/raw_images: one row per source "
            "object with its bytes and SHA-256. Unreadable or oversized objects go to rejects. "
            "Rerunning on the same sources adds nothing.")
    base.sources_arg(p)
    base.dataset_arg(p)
    p = add("process", "decode, validate, score and normalize into images (silver)",
            "Decode every new raw image, validate it (rejects get a reason code), compute quality "
            "scores and perceptual hashes, normalize to 8-bit RGB and re-encode into <dataset>/images. "
            "With --set process.privacy.blur_faces=true, faces are detected (MTCNN, CPU) and blurred in "
            "the stored pixels; images.faces counts them and the flag has_faces marks the images.")
    base.dataset_arg(p)
    p = add("dedupe", "find duplicate images",
            "Group images with identical normalized pixels (method pixel) and near duplicates "
            "(method phash: re-encoded, resized, brightened, blurred or slightly cropped copies. "
            "pHashes within dedupe.phash.max_distance bits, checked on dHash, and the two images must "
            "look alike on their 32x32 colour thumbnails: colour within colour_max_distance, the most "
            "different part within detail_max_distance, and where both have transparency its shape "
            "within alpha_max, so an added emblem, another colour or a faint symbol seen in alpha is not a "
            "duplicate; every member within member_max_distance pHash bits of its group's kept image "
            "and alike to it, so chains never link unlike images. Images of 8 to 31 px pair with "
            "larger images only, never with each other), and flat images (flag near_constant) of nearly the same colour "
            "(method flat: mean colour within dedupe.flat.max_distance of the kept one's). Keep one "
            "per group (largest original resolution, then smallest image_id) and record the others "
            "in <dataset>/duplicates. Only new pHashes are searched, against all.")
    base.dataset_arg(p)
    p = add("curate", "build the curated table with splits (gold)",
            "Kept images (not duplicates, no excluded quality flag) with label and a deterministic "
            "train/val/test split into <dataset>/curated.")
    base.dataset_arg(p)
    p = add("run", "all stages in order: ingest, process, dedupe, curate (and analyze)",
            "Run ingest, process, dedupe and curate on SOURCE... and print the accounting "
            "(process.privacy.blur_faces=true: faces blurred, see ptdm process --help). With --analyze, "
            "then ptdm analyze of the new curated version in the same Spark session (its tables, the "
            "scorecard and the report in the default folder; see ptdm analyze --help).")
    base.sources_arg(p)
    base.dataset_arg(p)
    p.add_argument("--analyze", action="store_true",
                   help="end with ptdm analyze of the curated table just written (report under "
                        "<lakehouse.root>/<dataset>/_reports/curated-v<version>/)")

    p = add("upload", "copy a local folder of images into HDFS (WebHDFS; parallel, resumable)",
            "Copy every file under LOCAL_DIR to HDFS_DIR over WebHDFS (landing.webhdfs_url). Files already "
            "there with the same size are skipped, so a rerun finishes an interrupted upload. Then: "
            "ptdm ingest hdfs://.../HDFS_DIR --dataset NAME")
    p.add_argument("local_dir", metavar="LOCAL_DIR")
    p.add_argument("hdfs_dir", metavar="HDFS_DIR", help="hdfs://host:port/path or /path")
    return {**{s: _cmd_stage for s in (*STAGES, "run")}, "upload": _cmd_upload}


def _cmd_stage(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    """``ptdm ingest|process|dedupe|curate|run``: the checks that need no Spark, the session, the
    checks that need it, then one job per stage (and the accounting after ``run``)."""
    from ptdm_spark import report, stages
    from ptdm_spark.errors import UsageError
    from ptdm_spark.io import delta, sources
    from ptdm_spark.pipeline.job import check_writable, job

    command = args.command
    dataset = delta.check_dataset_name(args.dataset)
    if command in ("ingest", "run"):
        _precheck_sources(args.sources)
        if args.labels and args.labels not in ("dirname", "none"):
            sources.check_manifest_file(args.labels)
    if command in ("process", "run") and cfg.process.privacy.blur_faces:
        _precheck_faces()
    spark = base.session(cfg)
    if command in ("process", "dedupe", "curate") and not delta.is_delta_table(
            spark, cfg.lakehouse.table_path(dataset, "raw_images")):
        raise UsageError(f"unknown dataset {dataset!r}: nothing ingested under {cfg.lakehouse.root_uri}/{dataset} "
                         f"(run: ptdm ingest SOURCE --dataset {dataset})")
    from ptdm_spark.protect.encryption import check_dataset_readable

    check_dataset_readable(spark, cfg.security.encryption, lambda t: cfg.lakehouse.table_path(dataset, t))
    steps = list(STAGES) if command == "run" else [command]
    inputs = stages.IngestInputs.prepare(spark, cfg.ingest, args.sources, args.labels) if "ingest" in steps else None
    check_writable(spark, cfg.lakehouse.table_path(dataset, "_staging"))  # the last check; then writes
    for step in steps:
        with job(spark, cfg, step, dataset, argv) as run:
            if step == "ingest":
                stages.ingest(spark, cfg.ingest, run, inputs)
            else:
                stages.run_stage(step, spark, cfg, run)
    if command == "run":
        report.accounting(spark, cfg, dataset)
        if args.analyze:
            from ptdm_spark.analysis.analyze import curated_version
            from ptdm_spark.cli.analysis import analyze_and_report

            analyze_and_report(spark, cfg, dataset, curated_version(spark, cfg, dataset, None), None, argv)
    return 0


def _precheck_faces() -> None:
    """process.privacy.blur_faces needs the detector's model files: say so before Spark starts."""
    from ptdm_spark.errors import UsageError
    from ptdm_spark.imaging import faces

    try:
        faces.model_dir()
    except faces.ModelUnavailable as exc:
        raise UsageError(str(exc)) from None


def _precheck_sources(srcs: list[str]) -> None:
    """Local paths are checked before Spark starts (fast one-line error); URIs after."""
    from ptdm_spark.errors import UsageError
    from ptdm_spark.io import sources

    for s in srcs:
        if not sources.is_uri(s) and not os.path.exists(os.path.expanduser(s)):
            raise UsageError(f"no such source: {s}")


def _cmd_upload(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.io import landing

    lc = cfg.landing
    res = landing.upload(args.local_dir, args.hdfs_dir, lc.webhdfs_url, lc.user or landing.default_user(), lc.workers)
    print(f"upload: {res.files} files: {res.uploaded} copied ({res.bytes / 1e6:.1f} MB), "
          f"{res.skipped} already there, {res.failed} failed")
    return 1 if res.failed else 0


