"""The analysis commands: ``ptdm analyze`` (stats, correlations, outliers, scorecard, the HTML
report) and ``ptdm preview`` (what-if of quality thresholds and excluded flags, nothing written)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    p = add("analyze", "statistics, quality scorecard, outliers and an HTML report of a curated dataset",
            "Analyse the dataset's curated table (now, or at Delta version N) with the tables it came from: "
            "writes the tables stats, correlations, outliers and scorecard (keyed by the curated version), "
            "writes DIR/report.html (self-contained, opens offline) with one PNG per plot, and prints the "
            "scorecard. Settings: analysis.* (outlier_scores, outlier_threshold, freshness_days, gallery.*).\n\n"
            "  ptdm analyze --dataset fashion\n"
            "  ptdm analyze --dataset fashion --version 3 --out /tmp/fashion-report\n"
            "  ptdm sql \"SELECT * FROM fashion.scorecard ORDER BY curated_version, dimension\"")
    base.dataset_arg(p)
    p.add_argument("--version", type=int, default=None, metavar="N",
                   help="analyse curated as of Delta version N (default: the current version)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="report folder, local path or Hadoop URI "
                        "(default: <lakehouse.root>/<dataset>/_reports/curated-v<version>/)")
    p = add("preview", "what-if: how curated changes under other quality thresholds or excluded flags",
            "Print, per rule and per label, how many curated images would be removed or added under the "
            "settings given with --set process.quality.* and --set curate.exclude_flags=[...], from the stored "
            "scores: nothing is decoded and nothing is written. A changed curate.exclude_flags takes effect "
            "with ptdm curate; process decides an image's flags when it first processes it, so a changed "
            "threshold takes effect on images processed with it (a dataset processed afresh).\n\n"
            "  ptdm preview --dataset fashion --set process.quality.dark_max=0.2 \\\n"
            "      --set curate.exclude_flags=[near_constant,dark]")
    base.dataset_arg(p)
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (default) or json (one object per line: kind = total | rule | label)")
    return {"analyze": _cmd_analyze, "preview": _cmd_preview}


def _cmd_analyze(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis import analyze as an
    from ptdm_spark.io import delta

    dataset = delta.check_dataset_name(args.dataset)
    if args.version is not None and args.version < 0:
        raise UsageError(f"--version {args.version}: a Delta version is 0 or more")
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, dataset)
    version = an.curated_version(spark, cfg, dataset, args.version)
    analyze_and_report(spark, cfg, dataset, version, args.out, argv)
    return 0


def analyze_and_report(spark, cfg: Config, dataset: str, version: int, out: str | None, argv: list[str]) -> None:
    """One ``analyze`` job of curated at ``version`` (tables and report), then the scorecard, the
    channel means and the report's path on stdout: ``ptdm analyze``, and ``ptdm run --analyze``
    after its curate, in the session the stages warmed."""
    from ptdm_spark.analysis import analyze as an
    from ptdm_spark.analysis.report import write as report_write
    from ptdm_spark.pipeline.job import check_writable, job

    out = out or f"{cfg.lakehouse.table_path(dataset, '_reports')}/curated-v{version}"
    check_writable(spark, cfg.lakehouse.table_path(dataset, "_staging"))
    with job(spark, cfg, "analyze", dataset, argv) as run:
        result, (uri, local) = an.analyze(spark, cfg, run, version,
                                          meanwhile=lambda a: report_write.write(spark, a, out))
    base.say("analyze", f"curated v{version}: {result.funnel['curated']:,} images, "
                        f"{result.outlier_count:,} outlier row(s)")
    rows = [{"dimension": d.dimension, "score": round(d.score, 4), "detail": d.detail} for d in result.scorecard]
    base.print_rows(["dimension", "score", "detail"], rows, "table")
    ds = {r["metric"]: r["value"] for r in result.stats if r["scope"] == "dataset"}
    if "channel_mean_R" in ds:
        print("channel mean (R, G, B): " + ", ".join(f"{ds[f'channel_mean_{c}']:.4f}" for c in "RGB")
              + "   std: " + ", ".join(f"{ds[f'channel_std_{c}']:.4f}" for c in "RGB"))
    print(f"report: {uri}")
    if local:
        print(f"report (local copy): {local}")


def _cmd_preview(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.analysis.preview import preview
    from ptdm_spark.io import delta

    dataset = delta.check_dataset_name(args.dataset)
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, dataset)
    p = preview(spark, cfg, dataset)
    if args.format == "json":
        out = sys.stdout
        out.write(json.dumps({"kind": "total", "now": p.now, "after": p.after,
                              "thresholds_changed": bool(p.thresholds_changed)}) + "\n")
        for r in p.by_rule:
            out.write(json.dumps({"kind": "rule", **r}) + "\n")
        for r in p.by_label:
            out.write(json.dumps({"kind": "label", **r}) + "\n")
        return 0
    print(f"curated now: {p.now:,}   after: {p.after:,}   ({p.after - p.now:+,})")
    print("\nby rule (an image removed for two flags counts under both):")
    base.print_rows(["rule", "removed", "added"], p.by_rule, "table")
    print("\nby label:")
    base.print_rows(["label", "now", "after", "removed", "added"], p.by_label, "table")
    if p.thresholds_changed:
        print("\nnote: these thresholds change stored flags. process decides an image's flags when it first "
              "processes it: they apply to a dataset processed afresh with these settings; "
              "curate.exclude_flags applies with: ptdm curate --dataset " + dataset)
    return 0
