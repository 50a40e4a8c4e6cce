"""Duplicates, found and recorded (phase one); ``curate`` removes them (phase two).

The kept image of a group is chosen by a stated, deterministic rule: the largest original
resolution (width x height), then the smallest ``image_id``.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ptdm_spark import schemas


def pixel_duplicates(images: DataFrame, run_id: str) -> DataFrame:
    """Images whose normalized pixels are identical (``pixel_sha256``): method ``pixel``, distance 0."""
    w = Window.partitionBy("pixel_sha256").orderBy(F.desc("pixels"), F.asc("image_id"))
    ranked = (
        images.select("image_id", "pixel_sha256", (F.col("width").cast("long") * F.col("height")).alias("pixels"))
        .withColumn("kept_id", F.first("image_id").over(w))
    )
    out = (
        ranked.filter(F.col("image_id") != F.col("kept_id"))
        .withColumn("method", F.lit("pixel"))
        .withColumn("distance", F.lit(0))
        .withColumn("run_id", F.lit(run_id))
    )
    return schemas.conform(out, schemas.DUPLICATES)
