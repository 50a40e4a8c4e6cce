"""Source objects -> ``raw_images`` rows and ingest ``rejects`` rows."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ptdm_spark import schemas

# Split names sources use, and the name they get here.
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test", "t10k": "test"}


def path_split(rel_path: Column) -> Column:
    """The split a source declares by its layout, read from the path *below* the source root
    (so a workspace folder named ``test`` means nothing): a ``train/``, ``val/``, ``test/``...
    folder (the deepest one wins), MNIST-style ``train-``/``t10k-`` IDX files, CIFAR's
    ``data_batch_N`` / ``test_batch``."""
    p = F.lower(rel_path)
    folder = F.regexp_extract(p, r"^(?:.*/)?(" + "|".join(SPLIT_NAMES) + r")/", 1)
    idx = F.regexp_extract(p, r"^(train|t10k|test)-images", 1)
    cifar = F.when(p.rlike(r"^data_batch_\d+#"), F.lit("train")).when(p.rlike(r"^test_batch#"), F.lit("test"))
    return F.coalesce(_canonical(F.coalesce(F.nullif(folder, F.lit("")), F.nullif(idx, F.lit("")))), cifar)


def _canonical(name: Column) -> Column:
    """train / val / test for the usual spellings; any other name as it is (lower case)."""
    mapping = F.create_map(*[F.lit(x) for kv in SPLIT_NAMES.items() for x in kv])
    return F.coalesce(mapping[F.lower(name)], F.lower(name))


def raw_images(objects: DataFrame, run_id: str, now: Column | None = None) -> DataFrame:
    """Readable objects: ``image_id`` is the SHA-256 of the bytes; ``source_split`` from a
    manifest's split column, else from the layout (:func:`path_split`)."""
    declared = _canonical(F.col("source_split")) if "source_split" in objects.columns else F.lit(None).cast("string")
    out = (
        objects.filter(F.col("error_reason").isNull() & F.col("content").isNotNull())
        .withColumn("source_split", F.coalesce(declared, path_split(F.col("rel_path"))))
        .withColumn("image_id", F.sha2(F.col("content"), 256))
        .withColumn("size_bytes", F.length("content").cast("long"))
        .withColumn("run_id", F.lit(run_id))
        .withColumn("ingested_at", now if now is not None else F.current_timestamp())
    )
    if "provenance" not in objects.columns:  # files: only ptdm collect knows a URL's provenance
        out = out.withColumn("provenance", F.lit(None).cast(schemas.PROVENANCE))
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
