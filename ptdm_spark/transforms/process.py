"""``raw_images`` -> the work list of the process stage, and processed records -> ``images`` /
``rejects``."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ptdm_spark import schemas
from ptdm_spark.config import QualityConfig

PASSTHROUGH = ("label", "labels", "source_split", "source_uri", "source_count")


def pending(raw: DataFrame, done_ids: DataFrame) -> DataFrame:
    """One row per distinct ``image_id`` of ``raw`` not in ``done_ids``, with its content.

    Several source objects may share one id; the image takes the label of the object with the
    smallest ``source_uri`` (deterministic) and keeps all distinct labels in ``labels``.
    """
    meta = (
        raw.groupBy("image_id")
        .agg(
            F.min("source_uri").alias("source_uri"),
            F.min_by("label", "source_uri").alias("label"),
            F.array_sort(F.collect_set("label")).alias("labels"),
            F.min_by("source_split", "source_uri").alias("source_split"),
            F.count(F.lit(1)).cast("int").alias("source_count"),
        )
        .join(done_ids, "image_id", "left_anti")
    )
    return raw.select("image_id", "source_uri", "content").join(meta, ["image_id", "source_uri"])


def with_flags(df: DataFrame, q: QualityConfig) -> DataFrame:
    """Score, then decide: turn the stored scores into an array of flag names."""
    longest = F.greatest("width", "height") / F.least("width", "height")
    rules = [
        ("blurry", F.col("blur") < q.blur_min),
        ("dark", F.col("brightness") < q.dark_max),
        ("bright", F.col("brightness") > q.bright_min),
        ("low_contrast", F.col("contrast") < q.contrast_min),
        ("low_information", F.col("entropy") < q.entropy_min),
        ("extreme_aspect", longest > q.aspect_max),
        ("near_constant", F.col("contrast") < q.near_constant_max),
        ("grayscale", (F.col("channels") >= 3) & (F.col("channel_spread") < q.grayscale_tolerance)),
        # faces is NULL where nobody looked (blurring off, or images older than the column).
        ("has_faces", F.col("faces") > 0 if "faces" in df.columns else F.lit(False)),
    ]
    flags = F.array(*[F.when(cond, F.lit(name)) for name, cond in rules])
    return df.withColumn("flags", F.filter(flags, lambda x: x.isNotNull()))


def any_flag(names: Sequence[str]) -> Column:
    """True where an image carries any of the flags ``names`` (False when none are named)."""
    if not names:
        return F.lit(False)
    return F.arrays_overlap("flags", F.array(*[F.lit(f) for f in names]))


def images(processed: DataFrame, q: QualityConfig, run_id: str) -> DataFrame:
    out = (
        processed.filter(F.col("reason").isNull())
        .transform(lambda d: with_flags(d, q))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("processed_at", F.current_timestamp())
    )
    return schemas.conform(out, schemas.IMAGES)


def rejects(processed: DataFrame, run_id: str) -> DataFrame:
    out = (
        processed.filter(F.col("reason").isNotNull())
        .withColumn("stage", F.lit("process"))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("rejected_at", F.current_timestamp())
    )
    return schemas.conform(out, schemas.REJECTS)
