"""``images`` minus duplicates minus excluded quality flags -> ``curated``, with a split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from ptdm_spark import schemas


def split_column(key: Column, splits: Mapping[str, float], seed: str) -> Column:
    """Deterministic split from a hash of ``key``: the same id always lands in the same split.

    The first 8 hex digits of SHA-256(seed + ":" + key) give a number u in [0, 1); splits take
    consecutive ranges of u in the configured order.
    """
    u = F.conv(F.substring(F.sha2(F.concat(F.lit(seed + ":"), key), 256), 1, 8), 16, 10).cast("double") / float(1 << 32)
    names = [n for n, r in splits.items() if r > 0]
    expr = None
    edge = 0.0
    for name in names[:-1]:
        edge += splits[name]
        cond = u < F.lit(edge)
        expr = F.when(cond, F.lit(name)) if expr is None else expr.when(cond, F.lit(name))
    last = F.lit(names[-1])
    return last if expr is None else expr.otherwise(last)


def curated(images: DataFrame, duplicates: DataFrame, exclude_flags: Sequence[str],
            splits: Mapping[str, float], seed: str, run_id: str) -> DataFrame:
    kept = images.join(duplicates.select("image_id").distinct(), "image_id", "left_anti")
    if exclude_flags:
        excluded = F.array(*[F.lit(f) for f in exclude_flags])
        kept = kept.filter(~F.arrays_overlap("flags", excluded))
    out = kept.withColumn("split", split_column(F.col("image_id"), splits, seed)).withColumn("run_id", F.lit(run_id))
    return schemas.conform(out, schemas.CURATED)
