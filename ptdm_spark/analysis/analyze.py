"""``ptdm analyze``: curated (now, or at a Delta version) and the tables it came from -> the
``stats``, ``correlations``, ``outliers`` and ``scorecard`` tables and the HTML report.

A table of contents: read, measure in Spark (aggregates only reach the driver), write each table
keyed by the analysed curated version, then build the report from those aggregates plus a bounded
number of thumbnails made on the executors.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptdm_spark import schemas
from ptdm_spark.analysis import outliers as o_mod
from ptdm_spark.analysis import scorecard as sc_mod
from ptdm_spark.analysis import stats as s_mod
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta
from ptdm_spark.pipeline.job import Clock, log, read_table, replace_slice
from ptdm_spark.runs import Run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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


def analyze(spark: "SparkSession", cfg: Config, run: Run, version: int) -> Analysis:
    from pyspark.sql import functions as F

    a = cfg.analysis
    clock = Clock("analyze")
    curated = spark.read.format("delta").option("versionAsOf", version).load(run.table_path("curated"))
    run.input_versions["curated"] = version
    images = read_table(spark, run, "images")
    raw = read_table(spark, run, "raw_images")
    # Everything but the bytes, cached once: the many small aggregates below read these, not the
    # Delta tables again (the bytes are read only for the channel sums and the thumbnails).
    images_m = images.drop("image", "colour_thumb").cache()
    raw_m = raw.drop("content").cache()
    rejects = read_table(spark, run, "rejects", schemas.REJECTS).drop("content").cache()
    dups = read_table(spark, run, "duplicates", schemas.DUPLICATES).cache()
    conflicts = read_table(spark, run, "label_conflicts", schemas.LABEL_CONFLICTS)
    leakage = read_table(spark, run, "leakage", schemas.LEAKAGE)
    df = s_mod.analysed(curated, images_m, raw_m).cache()
    n_curated = df.count()
    clock.expect(n_curated)

    # The funnel: source objects -> raw -> images -> curated, rejects by stage and reason.
    r = raw_m.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("image_id").alias("ids")).first()
    by_reason = rejects.groupBy("stage", "reason").count().collect()
    reject_counts = {f"{x['stage']}:{x['reason']}": int(x["count"]) for x in by_reason}
    reasons: dict[str, int] = {}
    for x in by_reason:
        reasons[x["reason"]] = reasons.get(x["reason"], 0) + int(x["count"])
    ingest_rejects = sum(int(x["count"]) for x in by_reason if x["stage"] == "ingest")
    objects = int(r["rows"]) + ingest_rejects
    n_images = images_m.count()
    funnel = {"source objects": objects, "raw_images": int(r["rows"]), "distinct raw ids": int(r["ids"]),
              "images": n_images, "curated": n_curated}
    counts = {"curated": n_curated, "images": n_images, "duplicates": dups.count(), "source_objects": objects,
              "rejected_objects": sum(reasons.values())}

    stats_df = s_mod.stats(spark, df, images_m, counts, reasons)
    _write(spark, run, "stats", stats_df, version, schemas.STATS)
    clock.lap(f"stats of {n_curated} curated image(s), with exact channel means and stds over every pixel")
    _write(spark, run, "correlations", s_mod.correlations(spark, df), version, schemas.CORRELATIONS)
    outl = o_mod.outliers(df, a.outlier_scores, a.outlier_threshold)
    if outl is None:
        outl = spark.createDataFrame([], schemas.OUTLIERS).drop("curated_version", "run_id")
    _write(spark, run, "outliers", outl, version, schemas.OUTLIERS)
    clock.lap("correlations and outliers")

    stored_outliers = _at(spark, run, "outliers", version).cache()
    measured, details = measure(spark, cfg, df, images_m, raw_m, rejects, conflicts, leakage, stored_outliers,
                                counts)
    card = sc_mod.compute(measured, details)
    rows = [(d.dimension, d.score, d.inputs, d.formula, d.detail) for d in card]
    sc_df = spark.createDataFrame(rows, "dimension string, score double, inputs map<string,double>, "
                                        "formula string, detail string")
    _write(spark, run, "scorecard", sc_df, version, schemas.SCORECARD)
    clock.lap("scorecard")

    top_outliers = [r.asDict() for r in stored_outliers.orderBy(F.desc(F.abs("robust_z"))).limit(
        max(a.gallery.per_section, 1)).collect()]
    galleries = gallery_rows(spark, cfg, run, df, images, raw, rejects, dups, conflicts, top_outliers)
    clock.lap(f"{sum(len(v) for v in galleries.values())} thumbnail(s) made on the executors")
    hist = histograms(df)
    q = cfg.process.quality
    thresholds = {"blur": [("blur_min", q.blur_min)], "brightness": [("dark_max", q.dark_max), ("bright_min", q.bright_min)],
                  "contrast": [("contrast_min", q.contrast_min), ("near_constant_max", q.near_constant_max)],
                  "entropy": [("entropy_min", q.entropy_min)], "channel_spread": [("grayscale_tolerance", q.grayscale_tolerance)],
                  "aspect_ratio": [("aspect_max", q.aspect_max)]}
    run.counts.update(curated=n_curated, outliers=int(measured["outlier_rows"]), curated_version=version)
    out = Analysis(run.dataset, version,
                   [r.asDict() for r in _at(spark, run, "stats", version).collect()],
                   [r.asDict() for r in _at(spark, run, "correlations", version).collect()],
                   top_outliers, run.counts["outliers"], card, funnel, reject_counts, hist, thresholds, galleries)
    for cached in (df, images_m, raw_m, rejects, dups, stored_outliers):
        cached.unpersist()
    return out


def _write(spark: "SparkSession", run: Run, table: str, df: "DataFrame", version: int, schema) -> None:
    """Replace the rows of this curated version in one commit (others stay: several versions side
    by side); a re-analysis of the same version replaces its rows."""
    from pyspark.sql import functions as F

    out = schemas.conform(df.withColumn("curated_version", F.lit(version)).withColumn("run_id", F.lit(run.run_id)),
                          schema)
    replace_slice(spark, run, table, out, f"curated_version = {int(version)}")


def _at(spark: "SparkSession", run: Run, table: str, version: int) -> "DataFrame":
    from pyspark.sql import functions as F

    return spark.read.format("delta").load(run.table_path(table)).filter(F.col("curated_version") == version)


def measure(spark, cfg: Config, df, images, raw, rejects, conflicts, leakage, outl,
            counts: dict[str, int]) -> tuple[dict[str, float], dict[str, str]]:
    """The scorecard's inputs, each an aggregate over the tables (see :mod:`scorecard`); ``images``
    and ``raw`` without their bytes, ``counts`` the totals :func:`analyze` measured."""
    from pyspark.sql import functions as F

    n_curated = counts["curated"]
    m: dict[str, float] = {"curated": n_curated, "images": counts["images"], "source_objects": counts["source_objects"],
                           "rejected_objects": counts["rejected_objects"]}
    ids = df.select("image_id")
    # Every member of a label-conflict component (the non-kept ones are duplicates, never curated).
    m["conflict_images"] = conflicts.select(F.explode("image_ids").alias("image_id")).join(
        images.select("image_id"), "image_id", "left_semi").distinct().count()
    o = outl.agg(F.count(F.lit(1)).alias("rows"), F.countDistinct("image_id").alias("ids")).first()
    m["outlier_rows"], m["outlier_images"] = o["rows"], o["ids"]
    # completeness: objects that became usable, labelled images; empty label x split cells
    usable = images.filter(F.col("label").isNotNull()).select("image_id")
    m["usable_objects"] = raw.join(usable, "image_id", "left_semi").count()
    i = images.agg(F.collect_set(F.coalesce("label", F.lit("(none)"))).alias("labels"),
                   F.sum((F.size("labels") > 1).cast("long")).alias("multi"),
                   F.sum((F.col("decoder_warnings").isNotNull() & (F.col("decoder_warnings") != "")).cast("long"))
                   .alias("warned")).first()
    labels = sorted(i["labels"] or [])
    splits = [s for s, r in cfg.curate.splits.items() if r > 0]
    filled = {(r[0], r[1]) for r in df.select(F.coalesce("label", F.lit("(none)")), "split").distinct().collect()}
    empty = [(lb, sp) for lb in labels for sp in splits if (lb, sp) not in filled]
    m["cells"], m["empty_cells"] = len(labels) * len(splits), len(empty)
    # consistency
    m["leaking"] = leakage.join(ids, "image_id", "left_semi").count()
    m["multi_label_images"] = float(i["multi"] or 0)
    shape = df.groupBy("width", "height", "channels").count().orderBy(F.desc("count")).first()
    m["modal_shape_share"] = (shape["count"] / n_curated) if shape and n_curated else 0.0
    # reliability
    m["decoder_warning_images"] = float(i["warned"] or 0)
    src = raw.select("image_id", s_mod.source_of(F.col("source_uri")).alias("source"))
    rej = rejects.select(s_mod.source_of(F.col("source_uri")).alias("source"), F.lit(1).alias("rej"))
    per_source = (src.select("source", F.lit(0).alias("rej")).unionByName(rej).groupBy("source")
                  .agg(F.count(F.lit(1)).alias("n"), F.sum("rej").alias("rej"))
                  .withColumn("rate", F.col("rej") / F.col("n")).filter("rej > 0")
                  .orderBy(F.desc("rate"), F.desc("rej")).limit(5).collect())
    # timeliness
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    window = cfg.analysis.freshness_days
    cut = now - dt.timedelta(days=window)
    t = raw.agg(F.count("source_modified_at").alias("dated"),
                F.sum((F.col("source_modified_at") >= F.lit(cut)).cast("long")).alias("fresh"),
                F.max("ingested_at").alias("last"), F.min("source_modified_at").alias("oldest")).first()
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


def histograms(df: "DataFrame", bins: int = 40) -> dict[str, list[tuple[float, float]]]:
    """Per score and size column: (bin left edge, count) pairs, binned in Spark: one job for the
    ranges, one for every column's bins."""
    from pyspark.sql import functions as F

    cols = (*s_mod.SCORES, "width", "height", "aspect_ratio", "size_bytes")
    rng = df.agg(*[F.min(c).alias(f"lo_{c}") for c in cols], *[F.max(c).alias(f"hi_{c}") for c in cols]).first()
    edges = {}
    for c in cols:
        lo, hi = rng[f"lo_{c}"], rng[f"hi_{c}"]
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


def gallery_rows(spark, cfg: Config, run: Run, df, images, raw, rejects, dups, conflicts,
                 top_outliers: list[dict]) -> dict[str, list[dict[str, Any]]]:
    """Up to ``analysis.gallery.per_section`` image ids per section, chosen in Spark; their
    thumbnails made on the executors; only those rows are collected."""
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
    # outliers (already the strongest few)
    if top_outliers:
        o = spark.createDataFrame([(r["image_id"], f"{r['score']} z={r['robust_z']:+.1f} ({r['label']})", float(i))
                                   for i, r in enumerate(top_outliers)], "image_id string, caption string, ord double")
        picks.append(o.select(F.lit("outliers").alias("section"), "image_id", F.lit(None).cast("string").alias("source"),
                              "caption", "ord"))
    # lowest-scoring images per flag
    flag_score = {"blurry": "blur", "dark": "brightness", "low_contrast": "contrast", "low_information": "entropy",
                  "near_constant": "contrast", "grayscale": "channel_spread", "bright": "brightness"}
    for flag, score in flag_score.items():
        sign = F.desc(score) if flag == "bright" else F.asc(score)
        f = images.filter(F.array_contains("flags", flag)).orderBy(sign, "image_id").limit(n)
        picks.append(f.select(F.lit(f"flag: {flag}").alias("section"), "image_id",
                              F.col("source_uri").alias("source"),
                              F.format_string(f"{score}=%.3g", F.col(score)).alias("caption"),
                              F.col(score).cast("double").alias("ord")))
    chosen = picks[0]
    for p in picks[1:]:
        chosen = chosen.unionByName(p)
    chosen = chosen.cache()
    # bytes: the normalized image when it was decoded; else the source object's content
    have = chosen.select("image_id").distinct()
    from_images = images.join(have, "image_id", "left_semi").select("image_id", F.col("image").alias("data"),
                                                                     F.col("source_uri").alias("src"))
    from_raw = (raw.join(have, "image_id", "left_semi").join(from_images.select("image_id"), "image_id", "left_anti")
                .groupBy("image_id").agg(F.min_by("content", "source_uri").alias("data"),
                                         F.min("source_uri").alias("src")))
    thumbs = from_images.unionByName(from_raw).mapInPandas(_thumbs(g.thumb_side),
                                                           "image_id string, src string, png binary")
    rows = chosen.join(thumbs, "image_id").filter(F.col("png").isNotNull()).collect()
    chosen.unpersist()
    out: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["section"], r["ord"] if r["ord"] is not None else 0.0, r["image_id"])):
        out.setdefault(r["section"], []).append({"image_id": r["image_id"], "source": r["source"] or r["src"],
                                                 "caption": r["caption"] or "", "png": bytes(r["png"])})
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
