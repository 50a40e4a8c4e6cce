"""``ptdm preview``: what curated would hold under changed quality thresholds and excluded flags,
from the stored scores (no decoding, nothing written).

What it predicts, precisely: the curated set that ``curate`` builds from the images the dataset
holds now, with flags decided by ``process.quality`` as given (recomputed from the stored scores
with the same rule as ``process``) and ``curate.exclude_flags`` as given. A change of
``curate.exclude_flags`` takes effect by re-running ``ptdm curate`` on the dataset. ``process``
decides each image's flags once, when it first processes it: a changed threshold takes effect on
images processed with it (a dataset processed afresh with these settings), not by re-running
``process`` over images it already holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class Preview:
    now: int
    after: int
    by_label: list[dict[str, Any]] = field(default_factory=list)  # label, now, after, removed, added
    by_rule: list[dict[str, Any]] = field(default_factory=list)  # rule, removed, added
    thresholds_changed: list[str] = field(default_factory=list)


def preview(spark: "SparkSession", cfg: Config, dataset: str) -> Preview:
    from pyspark.sql import functions as F

    from ptdm_spark import schemas
    from ptdm_spark.transforms.process import any_flag, with_flags

    lh = cfg.lakehouse
    if not delta.is_delta_table(spark, lh.table_path(dataset, "images")):
        raise UsageError(f"dataset {dataset!r} has no images table yet (run: ptdm process --dataset {dataset})")
    images = spark.read.format("delta").load(lh.table_path(dataset, "images"))
    dup_path, cur_path = lh.table_path(dataset, "duplicates"), lh.table_path(dataset, "curated")
    dups = (spark.read.format("delta").load(dup_path) if delta.is_delta_table(spark, dup_path)
            else spark.createDataFrame([], schemas.DUPLICATES))
    cur = (spark.read.format("delta").load(cur_path) if delta.is_delta_table(spark, cur_path)
           else spark.createDataFrame([], schemas.CURATED))
    exclude = list(cfg.curate.exclude_flags)

    base = images.select("image_id", "label", "flags", "blur", "brightness", "contrast", "entropy", "width",
                         "height", "channels", "channel_spread")
    old_flags = base.select("image_id", F.col("flags").alias("old_flags"))
    new = with_flags(base.drop("flags"), cfg.process.quality).join(old_flags, "image_id")
    changed = new.filter(F.array_sort("flags") != F.array_sort("old_flags")).limit(1).count() > 0
    eligible = new.join(dups.select("image_id"), "image_id", "left_anti")
    after = eligible.filter(~any_flag(exclude)).select("image_id", "label", "flags")
    now = cur.select("image_id", "label")
    removed = now.join(after.select("image_id"), "image_id", "left_anti") \
        .join(new.select("image_id", "flags", "old_flags"), "image_id", "left")
    added = after.join(now.select("image_id"), "image_id", "left_anti").join(old_flags, "image_id")

    lab = F.coalesce("label", F.lit("(none)"))
    counts: dict[str, dict[str, int]] = {}
    for name, df in (("now", now), ("after", after), ("removed", removed), ("added", added)):
        for r in df.groupBy(lab.alias("label")).count().collect():
            counts.setdefault(r["label"], {"now": 0, "after": 0, "removed": 0, "added": 0})[name] = int(r["count"])
    rules: dict[str, dict[str, int]] = {}
    ex = F.array(*[F.lit(f) for f in exclude]) if exclude else F.array().cast("array<string>")
    # removed: the excluded flags the image carries under the new settings (or: no longer in images)
    why_removed = removed.select(F.when(F.col("flags").isNull(), F.array(F.lit("(not in images)")))
                                 .otherwise(F.array_intersect("flags", ex)).alias("rules"))
    for r in why_removed.select(F.explode("rules").alias("rule")).groupBy("rule").count().collect():
        rules.setdefault(r["rule"], {"removed": 0, "added": 0})["removed"] = int(r["count"])
    # added: the flags that kept it out (its stored flags among those excluded by the run that
    # wrote curated) and no longer do (a flag it lost under the new thresholds, or one no longer
    # excluded); else it was simply not curated yet
    kept_out = F.coalesce("old_flags", F.array().cast("array<string>"))
    before = _exclusion_of_curated(spark, cfg, dataset)
    if before is not None:
        kept_out = F.array_intersect(kept_out, F.array(*[F.lit(f) for f in before]).cast("array<string>"))
    gone = F.array_except(kept_out, F.array_intersect("flags", ex))
    why_added = added.select(F.when(F.size(gone) > 0, gone).otherwise(F.array(F.lit("(not curated yet)")))
                             .alias("rules"))
    for r in why_added.select(F.explode("rules").alias("rule")).groupBy("rule").count().collect():
        rules.setdefault(r["rule"], {"removed": 0, "added": 0})["added"] = int(r["count"])
    by_label = [{"label": k, **v} for k, v in sorted(counts.items())]
    return Preview(now=sum(v["now"] for v in counts.values()), after=sum(v["after"] for v in counts.values()),
                   by_label=by_label, by_rule=[{"rule": k, **v} for k, v in sorted(rules.items())],
                   thresholds_changed=["process.quality"] if changed else [])


def _exclusion_of_curated(spark: "SparkSession", cfg: Config, dataset: str) -> tuple[str, ...] | None:
    """``curate.exclude_flags`` of the newest successful run that wrote ``curated`` (from the
    ``runs`` ledger's config); None when the ledger does not say."""
    import json

    from pyspark.sql import functions as F

    path = cfg.lakehouse.table_path(dataset, "runs")
    if not delta.is_delta_table(spark, path):
        return None
    row = (spark.read.format("delta").load(path)
           .filter((F.col("status") == "succeeded") & F.col("output_versions").getItem("curated").isNotNull())
           .orderBy(F.col("finished_at").desc()).select("config").first())
    try:
        return tuple(json.loads(row["config"])["curate"]["exclude_flags"])
    except (TypeError, KeyError, ValueError):
        return None
