"""``ptdm analyze``: curated (now, or at a Delta version) and the tables it came from -> the
``stats``, ``correlations``, ``outliers`` and ``scorecard`` tables and the HTML report.

A table of contents: read, measure in Spark (aggregates only reach the driver), write each table
keyed by the analysed curated version, then build the report from those aggregates plus a bounded
number of thumbnails made on the executors.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ptdm_spark import schemas
from ptdm_spark.analysis import outliers as o_mod
from ptdm_spark.analysis import scorecard as sc_mod
from ptdm_spark.analysis import stats as s_mod
from ptdm_spark.config import QUALITY_FLAGS, Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta
from ptdm_spark.pipeline.job import Clock, log, read_table, replace_rows, replace_slice
from ptdm_spark.runs import Run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

T = TypeVar("T")
# Outliers up to this many rows are collected and written like the small tables where the
# lakehouse allows writing without Spark; more, or any on hdfs:// or encrypted, from the executors.
NATIVE_OUTLIERS = 50_000


@dataclass
class Analysis:
    """What the report is made of: aggregates and bounded samples, all on the driver."""

    dataset: str
    version: int
    stats: list[dict[str, Any]]
    correlations: list[dict[str, Any]]
    outliers: list[dict[str, Any]]  # the strongest, bounded by the gallery size
    outlier_count: int
    scorecard: list[sc_mod.Dimension]
    funnel: dict[str, int]
    rejects: dict[str, int]
    score_samples: dict[str, list[tuple[float, float]]]  # score -> histogram (edges, counts) pairs
    thresholds: dict[str, list[tuple[str, float]]]
    galleries: dict[str, list[dict[str, Any]]]  # section -> [{image_id, source, caption, png}]


def curated_version(spark: "SparkSession", cfg: Config, dataset: str, version: int | None) -> int:
    path = cfg.lakehouse.table_path(dataset, "curated")
    now = delta.table_version(spark, path)
    if now is None:
        raise UsageError(f"dataset {dataset!r} has no curated table yet (run: ptdm curate --dataset {dataset})")
    if version is None:
        return now
    if not 0 <= version <= now:
        raise UsageError(f"--version {version}: curated of {dataset!r} has versions 0..{now}")
    return version


def analyze(spark: "SparkSession", cfg: Config, run: Run, version: int,
            meanwhile: "Callable[[Analysis], T] | None" = None) -> tuple[Analysis, "T | None"]:
    """Measure ``curated`` at ``version``; returns the analysis and what ``meanwhile(analysis)``
    returned (the report: drawn on this thread while the four tables are written).

    The tables are opened from threads at once and the columns the analysis reads marked for
    caching; the work after that is some fifteen Spark queries, as few as the measures allow
    (each distinct plan costs planning, code generation and JIT compilation in the JVM: far more
    than its rows at 70,000 images): one aggregation per table for the funnel, every scope's
    stats in one, Pearson and Spearman in one sum aggregation each (the values centred on the
    stats' means), outliers from the stats' label medians, the gallery ids in one, the
    scorecard's four. They are submitted to a pool of driver threads, a step that needs another's
    result waiting in its own thread: those that need only the tables start before the analysed
    frame's first query (a cold JVM's first query is mostly Delta snapshots, planning and code
    generation, with cores to spare), the rest once it is cached. The scorecard is assembled from
    the results on this thread. The four tables are small and on the driver by then (outliers
    when there are at most :data:`NATIVE_OUTLIERS`): a local, unencrypted lakehouse writes them
    with deltalake, without Spark jobs (a cold JVM's first Delta writes took ~7 s)."""
    from pyspark.sql import functions as F

    a = cfg.analysis
    clock = Clock("analyze")
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="analyze") as pool:
        # The tables are read as the Parquet files of their version where the lakehouse allows
        # (read_natively: no Delta state reconstruction in the cold JVM); opened in threads at once
        # for the others: a fresh JVM's first query of each Delta table reconstructs its state and
        # lists its files in a few small Spark jobs, and one query planning them all did that one
        # table after another.

        def opened(table: str, schema=None, keep: tuple[str, ...] | None = None, drop: tuple[str, ...] = ()):
            """The table, and the columns the analysis reads of it cached (``keep``, those the
            table has; or all but ``drop``): no bytes, no hashes, no run ids."""
            full = read_table(spark, run, table, schema, files_of_version=True)
            kept = full.select(*[c for c in keep if c in full.columns]) if keep else full.drop(*drop)
            return full, kept.cache()

        f_open = {t: pool.submit(opened, t, *rest) for t, *rest in (
            ("images", None, ("image_id", "label", "labels", "source_uri", "format", *s_mod.SCORES, "flags",
                              "decoder_warnings", "pixel_sums")),
            ("raw_images", None, ("image_id", "source_uri", "size_bytes", "source_modified_at", "ingested_at")),
            ("rejects", schemas.REJECTS, None, ("content",)), ("duplicates", schemas.DUPLICATES))}
        conflicts = read_table(spark, run, "label_conflicts", schemas.LABEL_CONFLICTS, files_of_version=True)
        leakage = read_table(spark, run, "leakage", schemas.LEAKAGE, files_of_version=True)
        curated = read_table(spark, run, "curated", files_of_version=True, version=version)
        # The columns read, cached once: the aggregates below read these, not the Delta tables
        # again; each fills at its first use, whichever query that is (concurrent queries wait
        # for a partition another is caching). The channel sums are the ones process stored; bytes
        # are read only for images processed before it stored them, and for the few thumbnails.
        images, images_m = f_open["images"].result()
        raw, raw_m = f_open["raw_images"].result()
        rejects = f_open["rejects"].result()[1]
        dups = f_open["duplicates"].result()[1]
        took: dict[str, float] = {}

        def timed(name: str, fn, *after):
            """``fn(results of the futures after)`` in the pool; its own time (not the wait) in ``took``."""
            def go():
                got = [f.result() for f in after]
                t = time.monotonic()
                try:
                    return fn(*got)
                finally:
                    took[name] = time.monotonic() - t
            return pool.submit(go)

        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        cut = now - dt.timedelta(days=a.freshness_days)
        # The queries that need no analysed frame start now, while its first query runs (a cold
        # JVM's first query is mostly waiting: Delta snapshots, planning, code generation).
        # One aggregation per table: raw_images (with which of its objects became usable,
        # labelled images: the scorecard's completeness), rejects, images (with its flag counts).
        f_dups = timed("duplicates", dups.count)
        usable = images_m.filter(F.col("label").isNotNull()).select("image_id", F.lit(1).alias("_usable"))
        f_raw = timed("funnel", lambda: raw_m.join(usable, "image_id", "left").agg(
            F.count(F.lit(1)).alias("rows"), F.countDistinct("image_id").alias("ids"),
            F.count("source_modified_at").alias("dated"),
            F.sum((F.col("source_modified_at") >= F.lit(cut)).cast("long")).alias("fresh"),
            F.max("ingested_at").alias("last"), F.min("source_modified_at").alias("oldest"),
            F.count("_usable").alias("usable")).first())
        f_reasons = timed("rejects", lambda: rejects.groupBy("stage", "reason").count().collect())
        f_im = timed("images", lambda: images_m.agg(
            F.count(F.lit(1)).alias("n"), F.collect_set(F.coalesce("label", F.lit("(none)"))).alias("labels"),
            F.sum((F.size("labels") > 1).cast("long")).alias("multi"),
            F.sum((F.col("decoder_warnings").isNotNull() & (F.col("decoder_warnings") != "")).cast("long"))
            .alias("warned"),
            *[F.sum(F.array_contains("flags", f).cast("long")).alias(f"flag {f}") for f in QUALITY_FLAGS]).first())
        independent, of_frame = scorecard_queries(images_m, raw_m, rejects, conflicts, leakage)
        f_card = {k: timed(k, q) for k, q in independent.items()}
        f_picks = timed("gallery", lambda: gallery_picks(cfg, rejects, dups, conflicts, images_m))

        def frame():
            df = s_mod.analysed(curated, images_m, raw_m).cache()
            got = df.agg(F.count(F.lit(1)).alias("rows"),
                         F.sum(F.col("n").isNull().cast("long")).alias("unsummed")).first()
            if got["unsummed"]:
                whole = s_mod.with_decoded_sums(df, curated).cache()
                whole.count()
                df.unpersist()
                df = whole
            return df, int(got["rows"])

        df, n_curated = frame()
        clock.lap(f"read {n_curated} curated image(s) and their pixel sums")

        f_card.update({k: timed(k, q) for k, q in of_frame(df).items()})
        f_aggs = timed("stats", lambda: s_mod.scoped_aggregates(df))
        f_corr = timed("correlations", lambda aggs: s_mod.correlations(df, centre=_dataset_means(aggs)), f_aggs)

        def find_outliers(aggs):
            found = o_mod.outliers(df, a.outlier_scores, a.outlier_threshold, _label_medians(aggs))
            if found is None:
                found = spark.createDataFrame([], schemas.OUTLIERS).drop("curated_version", "run_id")
            found = found.cache()
            o = found.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("image_id").alias("ids")).first()
            top = [x.asDict() for x in found.orderBy(F.desc(F.abs("robust_z")), "image_id").limit(
                max(a.gallery.per_section, 1)).collect()]
            return found, {"rows": o["rows"], "ids": o["ids"]}, top

        f_outl = timed("outliers", find_outliers, f_aggs)
        f_hist = timed("histograms", lambda aggs: histograms(df, _dataset_row(aggs)), f_aggs)
        f_gal = timed("thumbnails", lambda picked, found: gallery_rows(cfg, images, raw, picked, found[2]),
                      f_picks, f_outl)

        # The funnel: source objects -> raw -> images -> curated, rejects by stage and reason.
        r, by_reason, im = f_raw.result(), f_reasons.result(), f_im.result()
        reject_counts = {f"{x['stage']}:{x['reason']}": int(x["count"]) for x in by_reason}
        reasons: dict[str, int] = {}
        for x in by_reason:
            reasons[x["reason"]] = reasons.get(x["reason"], 0) + int(x["count"])
        ingest_rejects = sum(int(x["count"]) for x in by_reason if x["stage"] == "ingest")
        objects = int(r["rows"]) + ingest_rejects
        n_images = int(im["n"])
        funnel = {"source objects": objects, "raw_images": int(r["rows"]), "distinct raw ids": int(r["ids"]),
                  "images": n_images, "curated": n_curated}
        counts = {"curated": n_curated, "images": n_images, "duplicates": f_dups.result(),
                  "source_objects": objects, "rejected_objects": sum(reasons.values())}
        aggregates = f_aggs.result()
        flags = {f: int(im[f"flag {f}"]) for f in QUALITY_FLAGS if im[f"flag {f}"]}
        stats_rows = s_mod.stats_rows(aggregates, counts, reasons, flags)
        outl, o_counts, top_outliers = f_outl.result()
        measured, details = measure(cfg, counts, o_counts, r, im, aggregates,
                                    {k: f.result() for k, f in f_card.items()})
        card = sc_mod.compute(measured, details)
        corr_rows, galleries, hist = f_corr.result(), f_gal.result(), f_hist.result()
        clock.lap(f"stats, correlations, outliers, scorecard, {sum(len(v) for v in galleries.values())} "
                  "thumbnail(s) and histograms, measured at once ("
                  + ", ".join(f"{k} {v:.1f}s" for k, v in sorted(took.items(), key=lambda kv: -kv[1])) + ")")
        # The four tables, each one commit, written at once (four small Delta transactions that
        # share nothing but the session); ``meanwhile`` (the report) runs on this thread.
        # Rows on the driver: the three small tables, and the outliers when they are few.
        native = run.native_path(run.table_path("outliers")) is not None
        outl_rows = [x.asDict() for x in outl.collect()] if native and o_counts["rows"] <= NATIVE_OUTLIERS else outl
        writes = {
            "stats": [dict(zip(("scope", "key", "metric", "value"), x)) for x in stats_rows],
            "correlations": [dict(zip(("method", "a", "b", "value"), x)) for x in corr_rows],
            "outliers": outl_rows,
            "scorecard": [{"dimension": d.dimension, "score": d.score, "inputs": d.inputs, "formula": d.formula,
                           "detail": d.detail} for d in card],
        }
        schema_of = {"stats": schemas.STATS, "correlations": schemas.CORRELATIONS, "outliers": schemas.OUTLIERS,
                     "scorecard": schemas.SCORECARD}
        written = [pool.submit(_write, spark, run, t, w, version, schema_of[t]) for t, w in writes.items()]
        q = cfg.process.quality
        thresholds = {"blur": [("blur_min", q.blur_min)],
                      "brightness": [("dark_max", q.dark_max), ("bright_min", q.bright_min)],
                      "contrast": [("contrast_min", q.contrast_min), ("near_constant_max", q.near_constant_max)],
                      "entropy": [("entropy_min", q.entropy_min)],
                      "channel_spread": [("grayscale_tolerance", q.grayscale_tolerance)],
                      "aspect_ratio": [("aspect_max", q.aspect_max)]}
        run.counts.update(curated=n_curated, outliers=int(measured["outlier_rows"]), curated_version=version)
        out = Analysis(run.dataset, version,
                       writes["stats"], writes["correlations"],
                       top_outliers, run.counts["outliers"], card, funnel, reject_counts, hist, thresholds, galleries)
        try:
            done = meanwhile(out) if meanwhile is not None else None
        finally:
            wait(written)  # the tables are written (or failed) before anything is raised
        for f in written:
            f.result()
        clock.lap("wrote stats, correlations, outliers and scorecard"
                  + (" and the report" if meanwhile is not None else ""))
    for cached in (df, images_m, raw_m, rejects, dups, outl):
        cached.unpersist()
    return out, done


def _dataset_row(aggregates: list[dict]) -> dict:
    """The dataset scope's aggregates (empty when nothing was aggregated)."""
    return next((x for x in aggregates if x["scope"] == "dataset"), {})


def _dataset_means(aggregates: list[dict]) -> dict[str, float]:
    """Each column's mean over the dataset, from the scoped aggregates (the correlations' centre)."""
    ds = _dataset_row(aggregates)
    return {c: ds.get(f"{c}_mean") for c in s_mod.CORRELATED}


def _label_medians(aggregates: list[dict]) -> dict[tuple[str, str], float]:
    """(label key, column) -> the column's median within the label, from the scoped aggregates
    (their p50 at accuracy 10,000: within 1/10,000 of the label's rows of the exact median); the
    key is the stats' label scope's (NULL labels as ``(none)``)."""
    out: dict[tuple[str, str], float] = {}
    for x in aggregates:
        if x["scope"] != "label":
            continue
        for col in (*s_mod.SIZES, *s_mod.SCORES):
            qs = x.get(f"{col}_q")
            if qs and qs[1] is not None:
                out[x["key"], col] = float(qs[1])
    return out


def _write(spark: "SparkSession", run: Run, table: str, data: "list[dict] | DataFrame", version: int,
           schema) -> None:
    """Replace the rows of this curated version in one commit (others stay: several versions side
    by side); a re-analysis of the same version replaces its rows. ``data``: rows on the driver
    (written without Spark where the lakehouse allows, see :func:`replace_rows`), or a frame."""
    from pyspark.sql import functions as F

    where = f"curated_version = {int(version)}"
    if isinstance(data, list):
        replace_rows(spark, run, table, [{**x, "curated_version": version, "run_id": run.run_id} for x in data],
                     schema, where)
        return
    out = schemas.conform(data.withColumn("curated_version", F.lit(version)).withColumn("run_id", F.lit(run.run_id)),
                          schema)
    replace_slice(spark, run, table, out, where)


def scorecard_queries(images, raw, rejects, conflicts, leakage
                      ) -> tuple[dict[str, Callable[[], Any]], Callable[["DataFrame"], dict[str, Callable[[], Any]]]]:
    """The scorecard's inputs that need a query of their own (see :mod:`scorecard`), independent
    of every other step: :func:`analyze` runs them at once with the rest. ``images`` and ``raw``
    without their bytes. Returns those that need only the tables, and a function of the analysed
    frame giving those that read it."""
    from pyspark.sql import functions as F

    src = raw.select("image_id", s_mod.source_of(F.col("source_uri")).alias("source"))
    rej = rejects.select(s_mod.source_of(F.col("source_uri")).alias("source"), F.lit(1).alias("rej"))
    independent = {
        # accuracy: every member of a label-conflict component (the non-kept ones are duplicates,
        # never curated)
        "conflict_images": lambda: conflicts.select(F.explode("image_ids").alias("image_id")).join(
            images.select("image_id"), "image_id", "left_semi").distinct().count(),
        # reliability: the worst sources
        "per_source": lambda: (src.select("source", F.lit(0).alias("rej")).unionByName(rej).groupBy("source")
                               .agg(F.count(F.lit(1)).alias("n"), F.sum("rej").alias("rej"))
                               .withColumn("rate", F.col("rej") / F.col("n")).filter("rej > 0")
                               .orderBy(F.desc("rate"), F.desc("rej")).limit(5).collect()),
    }

    def of_frame(df: "DataFrame") -> dict[str, Callable[[], Any]]:
        return {  # consistency
            "leaking": lambda: leakage.join(df.select("image_id"), "image_id", "left_semi").count(),
            "shape": lambda: df.groupBy("width", "height", "channels").count().orderBy(F.desc("count")).first(),
        }

    return independent, of_frame


def measure(cfg: Config, counts: dict[str, int], outliers: dict[str, int], raw_agg, images_agg,
            aggregates: list[dict], got: dict[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """The scorecard's inputs (see :mod:`scorecard`) from what :func:`analyze` measured:
    ``counts``, ``outliers`` (rows, ids), ``raw_agg`` (dated, fresh, last, oldest, usable),
    ``images_agg`` (labels, multi, warned), the scoped ``aggregates``, and ``got``: the results
    of :func:`scorecard_queries`. No query here."""
    n_curated = counts["curated"]
    m: dict[str, float] = {"curated": n_curated, "images": counts["images"], "source_objects": counts["source_objects"],
                           "rejected_objects": counts["rejected_objects"]}
    m["conflict_images"] = got["conflict_images"]
    m["outlier_rows"], m["outlier_images"] = outliers["rows"], outliers["ids"]
    m["usable_objects"] = float(raw_agg["usable"] or 0)  # objects that became usable, labelled images
    # completeness: empty label x split cells
    labels = sorted(images_agg["labels"] or [])
    held = {x["key"] for x in aggregates if x["scope"] == "split"}
    filled = {x["key"] for x in aggregates if x["scope"] == "label_split"}
    splits, empty = sc_mod.cells(labels, held, filled, cfg.curate.splits, cfg.curate.source_splits)
    m["cells"], m["empty_cells"] = len(labels) * len(splits), len(empty)
    m["leaking"] = got["leaking"]
    m["multi_label_images"] = float(images_agg["multi"] or 0)
    shape = got["shape"]
    m["modal_shape_share"] = (shape["count"] / n_curated) if shape and n_curated else 0.0
    m["decoder_warning_images"] = float(images_agg["warned"] or 0)
    per_source = got["per_source"]
    # timeliness
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    window = cfg.analysis.freshness_days
    t = raw_agg
    m["dated_objects"], m["fresh_objects"] = float(t["dated"] or 0), float(t["fresh"] or 0)
    last = t["last"]
    m["days_since_last_ingest"] = max(0.0, (now - last).total_seconds() / 86400) if last else float(window)
    m["freshness_days"] = float(window)
    details = {
        "accuracy": f"{int(m['conflict_images'])} image(s) in label-conflict components, "
                    f"{int(m['outlier_images'])} outlier image(s)",
        "completeness": (f"empty label/split cells: {', '.join(f'{a}/{b}' for a, b in empty[:5])}"
                         if empty else "every label has images in every split"),
        "consistency": f"{int(m['leaking'])} leaking, {int(m['multi_label_images'])} with several labels, "
                       f"modal shape {shape['width']}x{shape['height']}x{shape['channels']}" if shape else "",
        "reliability": ("worst sources: " + ", ".join(f"{r['source']} ({r['rej']}/{r['n']} rejected)"
                                                      for r in per_source)) if per_source else "no rejects",
        "timeliness": f"oldest source file {t['oldest']}, last ingest {last}" if last else "",
    }
    return {k: float(v) for k, v in m.items()}, details


def histograms(df: "DataFrame", ranges: dict, bins: int = 40) -> dict[str, list[tuple[float, float]]]:
    """Per score and size column: (bin left edge, count) pairs, binned in Spark in one job; the
    ranges are the dataset scope's min and max (``ranges``: ``<col>_min`` / ``<col>_max``)."""
    from pyspark.sql import functions as F

    cols = (*s_mod.SCORES, "width", "height", "aspect_ratio", "size_bytes")
    edges = {}
    for c in cols:
        lo, hi = ranges.get(f"{c}_min"), ranges.get(f"{c}_max")
        if lo is not None:
            lo, hi = float(lo), float(hi)
            edges[c] = (lo, (hi - lo) / bins if hi > lo else 1.0, bins if hi > lo else 1)
    got: dict[str, dict[int, int]] = {c: {} for c in edges}
    if edges:
        binned = [F.least(F.floor((F.col(c) - F.lit(lo)) / F.lit(w)), F.lit(n - 1)).cast("int")
                  for c, (lo, w, n) in edges.items()]
        stack = ", ".join(f"'{c}', b{i}" for i, c in enumerate(edges))
        long = (df.select(*[b.alias(f"b{i}") for i, b in enumerate(binned)])
                .select(F.expr(f"stack({len(edges)}, {stack}) AS (col, bin)")).dropna()
                .groupBy("col", "bin").count().collect())
        for r in long:
            got[r["col"]][int(r["bin"])] = int(r["count"])
    return {c: ([(edges[c][0] + i * edges[c][1], float(got[c].get(i, 0))) for i in range(edges[c][2])]
                if c in edges else []) for c in cols}


# --- galleries ------------------------------------------------------------------------------------


def gallery_picks(cfg: Config, rejects, dups, conflicts, images_m) -> list[dict[str, Any]]:
    """Up to ``analysis.gallery.per_section`` image ids per section but the outliers', chosen in
    one Spark query (``images_m``: images without bytes) and collected: section, image_id,
    source, caption and the order within the section."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    g = cfg.analysis.gallery
    n = g.per_section
    picks = []  # (section, image_id, caption, order)
    # rejects by reason (those that have bytes in raw_images)
    w = Window.partitionBy("reason").orderBy("source_uri")
    rj = (rejects.filter(F.col("image_id").isNotNull()).withColumn("r", F.row_number().over(w))
          .filter(F.col("r") <= n).select(F.concat(F.lit("rejects: "), "reason").alias("section"), "image_id",
                                          F.col("source_uri").alias("source"), F.col("reason").alias("caption"),
                                          F.col("r").cast("double").alias("ord")))
    picks.append(rj)
    # the largest duplicate clusters, kept image first
    big = dups.groupBy("kept_id").count().orderBy(F.desc("count"), "kept_id").limit(g.largest_clusters)
    members = (dups.join(big.select("kept_id"), "kept_id").select("kept_id", "image_id", "method")
               .unionByName(big.select("kept_id", F.col("kept_id").alias("image_id"), F.lit("kept").alias("method"))))
    wm = Window.partitionBy("kept_id").orderBy(F.col("method") != "kept", "image_id")
    members = members.withColumn("r", F.row_number().over(wm)).filter(F.col("r") <= n)
    picks.append(members.join(big, "kept_id").select(
        F.concat(F.lit("duplicate cluster of "), (F.col("count") + 1).cast("string"), F.lit(" ("),
                 F.substring("kept_id", 1, 8), F.lit(")")).alias("section"),
        "image_id", F.lit(None).cast("string").alias("source"), F.col("method").alias("caption"),
        F.col("r").cast("double").alias("ord")))
    # label conflicts
    lc = (conflicts.orderBy(F.desc("members"), "kept_id").limit(max(1, n // 2))
          .select("kept_id", F.posexplode("image_ids").alias("i", "image_id")).filter(F.col("i") < 4))
    picks.append(lc.select(F.concat(F.lit("label conflict "), F.substring("kept_id", 1, 8)).alias("section"),
                           "image_id", F.lit(None).cast("string").alias("source"),
                           F.lit("").alias("caption"), F.col("i").cast("double").alias("ord")))
    # lowest-scoring images per flag (the highest for bright): every flag in one window over the
    # flagged images (each flag its partition, a top-n per partition before the shuffle), not
    # one sorted query per flag
    flag_score = {"blurry": "blur", "dark": "brightness", "low_contrast": "contrast", "low_information": "entropy",
                  "near_constant": "contrast", "grayscale": "channel_spread", "bright": "brightness"}
    by_flag = images_m.select("image_id", "source_uri", *sorted(set(flag_score.values())),
                              F.explode("flags").alias("flag")).filter(F.col("flag").isin(*flag_score))
    score_name = F.create_map(*[F.lit(x) for kv in flag_score.items() for x in kv])[F.col("flag")]
    value = F.coalesce(*[F.when(F.col("flag") == f, F.col(sc)) for f, sc in flag_score.items()]).cast("double")
    by_flag = by_flag.withColumn("v", value)
    wf = Window.partitionBy("flag").orderBy(
        F.when(F.col("flag") == "bright", -F.col("v")).otherwise(F.col("v")).asc_nulls_last(), "image_id")
    picks.append(by_flag.withColumn("r", F.row_number().over(wf)).filter(F.col("r") <= n)
                 .select(F.concat(F.lit("flag: "), "flag").alias("section"), "image_id",
                         F.col("source_uri").alias("source"),
                         F.format_string("%s=%.3g", score_name, F.col("v")).alias("caption"), F.col("v").alias("ord")))
    chosen = picks[0]
    for p in picks[1:]:
        chosen = chosen.unionByName(p)
    return [r.asDict() for r in chosen.collect()]


def gallery_rows(cfg: Config, images, raw, picked: list[dict[str, Any]], top_outliers: list[dict]
                 ) -> dict[str, list[dict[str, Any]]]:
    """The gallery sections: the ``picked`` ids (:func:`gallery_picks`) and the strongest
    outliers, each with its thumbnail, made on the executors from the bytes of just those ids
    (``images`` and ``raw`` with their bytes)."""
    from pyspark.sql import functions as F

    g = cfg.analysis.gallery
    picked = picked + [{"section": "outliers", "image_id": r["image_id"], "source": None,
                        "caption": f"{r['score']} z={r['robust_z']:+.1f} ({r['label']})", "ord": float(i)}
                       for i, r in enumerate(top_outliers)]
    # bytes: the normalized image when it was decoded; else the source object's content
    want = sorted({r["image_id"] for r in picked})
    thumbs: dict[str, tuple[str, bytes]] = {}
    if want:
        from_images = images.filter(F.col("image_id").isin(want)).select(
            "image_id", F.col("image").alias("data"), F.col("source_uri").alias("src"))
        for r in from_images.mapInPandas(_thumbs(g.thumb_side), "image_id string, src string, png binary").collect():
            thumbs[r["image_id"]] = (r["src"], r["png"])
        rest = [i for i in want if i not in thumbs]
        # The source bytes were never searched for faces: with blurring on, no thumbnail of them
        # (a reject's gallery then shows no picture, only what the tables say).
        if rest and not cfg.process.privacy.blur_faces:
            from_raw = (raw.filter(F.col("image_id").isin(rest)).groupBy("image_id")
                        .agg(F.min_by("content", "source_uri").alias("data"), F.min("source_uri").alias("src")))
            for r in from_raw.mapInPandas(_thumbs(g.thumb_side), "image_id string, src string, png binary").collect():
                thumbs[r["image_id"]] = (r["src"], r["png"])
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(picked, key=lambda r: (r["section"], r["ord"] if r["ord"] is not None else 0.0, r["image_id"])):
        src, png = thumbs.get(r["image_id"], (None, None))
        if png is None:
            continue
        out.setdefault(r["section"], []).append({"image_id": r["image_id"], "source": r["source"] or src,
                                                 "caption": r["caption"] or "", "png": bytes(png)})
    log(f"[analyze] galleries: {', '.join(f'{k} ({len(v)})' for k, v in out.items()) or 'none'}")
    return out


def _thumbs(side: int):
    import pandas as pd

    def fn(batches):
        from ptdm_spark.imaging.cv import configure_worker
        from ptdm_spark.imaging.summary import thumbnail

        configure_worker()
        for b in batches:
            yield pd.DataFrame({"image_id": b["image_id"], "src": b["src"],
                                "png": [thumbnail(d, side) for d in b["data"].tolist()]})

    return fn
