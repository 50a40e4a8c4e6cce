"""Augmented copies of curated images: DataFrame -> DataFrame, no I/O.

The per-image work is :func:`ptdm_spark.imaging.augment.augment` (numpy/OpenCV), wrapped by a
thin ``mapInPandas`` adapter; each copy depends only on (recipe, seed, source image_id, copy
index), so the number of partitions never changes a byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ptdm_spark import schemas

# What the adapter returns per row (before run_id and the time are added).
OUT = ("image_id", "source_id", "recipe", "seed", "copy", "params", "split", "label", "image", "encoding",
       "width", "height", "error")
OUT_SCHEMA = ("image_id string, source_id string, recipe string, seed long, copy int, params string, "
              "split string, label string, image binary, encoding string, width int, height int, error string")


def todo(curated: DataFrame, done: DataFrame, splits: Sequence[str], copies: int, recipe: str,
         seed: int) -> DataFrame:
    """The (source image, copy) pairs still to make: curated rows of ``splits`` x copy indices
    0..copies-1, minus those ``done`` (the ``augmented`` table) has for this recipe and seed."""
    src = curated.filter(F.col("split").isin(list(splits))).select(
        F.col("image_id").alias("source_id"), "image", "split", "label")
    pairs = src.crossJoin(curated.sparkSession.range(copies).select(F.col("id").cast("int").alias("copy")))
    have = done.filter((F.col("recipe") == recipe) & (F.col("seed") == seed)).select("source_id", "copy")
    return pairs.join(have, ["source_id", "copy"], "left_anti")


def adapter(recipe_json: str, seed: int, max_rows: int = 256):
    """The ``mapInPandas`` function: (source_id, image, split, label, copy) -> :data:`OUT` rows."""

    def fn(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from ptdm_spark.imaging import augment as A
        from ptdm_spark.imaging.cv import configure_worker

        configure_worker()
        recipe = A.Recipe.from_json(recipe_json)
        for batch in batches:
            rows = []
            for r in batch.itertuples(index=False):
                a = A.augment(bytes(r.image), recipe, seed, r.source_id, int(r.copy))
                rows.append((A.image_id(a.image) if a.image is not None else None, r.source_id, recipe.name, seed,
                             int(r.copy), a.params, r.split, r.label, a.image, a.encoding, a.width, a.height, a.error))
                if len(rows) >= max_rows:
                    yield pd.DataFrame(rows, columns=list(OUT))
                    rows = []
            if rows:
                yield pd.DataFrame(rows, columns=list(OUT))

    return fn


def augmented(pairs: DataFrame, recipe_json: str, seed: int, parts: int) -> DataFrame:
    """:func:`todo`'s pairs -> augmented copies (:data:`OUT`, ``error`` set when a source does not decode)."""
    return pairs.repartition(parts, "source_id", "copy").mapInPandas(adapter(recipe_json, seed), OUT_SCHEMA)


def rows(made: DataFrame, run_id: str) -> DataFrame:
    """The ``augmented`` table's rows of the copies that succeeded."""
    out = (made.filter(F.col("error").isNull()).withColumn("run_id", F.lit(run_id))
           .withColumn("augmented_at", F.current_timestamp()))
    return schemas.conform(out, schemas.AUGMENTED)
