"""Source objects -> ``raw_images`` rows and ingest ``rejects`` rows."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ptdm_spark import schemas


def raw_images(objects: DataFrame, run_id: str, now: Column | None = None) -> DataFrame:
    """Readable objects: ``image_id`` is the SHA-256 of the bytes."""
    out = (
        objects.filter(F.col("error_reason").isNull() & F.col("content").isNotNull())
        .withColumn("image_id", F.sha2(F.col("content"), 256))
        .withColumn("size_bytes", F.length("content").cast("long"))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("ingested_at", now if now is not None else F.current_timestamp())
    )
    return schemas.conform(out, schemas.RAW_IMAGES)


def rejects(objects: DataFrame, run_id: str, now: Column | None = None) -> DataFrame:
    """Objects that could not even be read, with their reason code."""
    out = (
        objects.filter(F.col("error_reason").isNotNull())
        .withColumn("image_id", F.lit(None).cast("string"))
        .withColumn("stage", F.lit("ingest"))
        .withColumnRenamed("error_reason", "reason")
        .withColumnRenamed("error_detail", "detail")
        .withColumn("run_id", F.lit(run_id))
        .withColumn("rejected_at", now if now is not None else F.current_timestamp())
    )
    return schemas.conform(out, schemas.REJECTS)


def unreadable(expected: DataFrame, raw: DataFrame, rejected: DataFrame, run_id: str) -> DataFrame:
    """Files the listing found but that yielded no row anywhere: they could not be read."""
    seen = raw.select(F.col("source_uri").alias("path")).unionByName(
        rejected.select(F.col("source_uri").alias("path"))
    )
    out = (
        expected.join(seen, "path", "left_anti")
        .select(
            F.col("path").alias("source_uri"),
            F.lit(None).cast("string").alias("image_id"),
            F.lit("ingest").alias("stage"),
            F.lit("unreadable").alias("reason"),
            F.lit("listed but could not be read (permission denied, vanished or I/O error)").alias("detail"),
            F.lit(run_id).alias("run_id"),
            F.current_timestamp().alias("rejected_at"),
        )
    )
    return schemas.conform(out, schemas.REJECTS)
