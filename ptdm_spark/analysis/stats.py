"""The analysed frame (``curated`` at a version, with the scores and sizes of the tables it came
from) -> the ``stats`` and ``correlations`` rows. Every number is an aggregate computed in Spark;
only aggregates reach the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ptdm_spark.config import QUALITY_FLAGS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SCORES = ("blur", "brightness", "contrast", "entropy", "channel_spread")
SIZES = ("width", "height", "aspect_ratio", "size_bytes")
CORRELATED = (*SCORES, "width", "height", "size_bytes")
QUANTILES = (("min", None), ("p5", 0.05), ("p50", 0.5), ("p95", 0.95), ("max", None))
CHANNELS = ("R", "G", "B")
STATS_COLUMNS = "scope string, key string, metric string, value double"


def source_of(uri_col):
    """The source an object came from: its archive (``a.tar!/x.png`` -> ``a.tar``), else its folder."""
    from pyspark.sql import functions as F

    archive = F.regexp_extract(uri_col, r"([^/]+)!/", 1)
    folder = F.regexp_extract(uri_col, r"([^/]+)/[^/]+$", 1)
    return F.when(archive != "", archive).otherwise(F.coalesce(F.nullif(folder, F.lit("")), F.lit("/")))


def analysed(curated: "DataFrame", images: "DataFrame", raw: "DataFrame") -> "DataFrame":
    """One row per curated image: its label, split, image bytes, scores, sizes, format, source."""
    from pyspark.sql import functions as F

    size = raw.groupBy("image_id").agg(F.min("size_bytes").alias("size_bytes"))
    scores = images.select("image_id", "format", "labels", "decoder_warnings", *SCORES,
                           F.col("source_uri").alias("_src"))
    return (curated.select("image_id", "label", "split", "image", "width", "height", "channels", "flags")
            .join(scores, "image_id", "left").join(size, "image_id", "left")
            .withColumn("aspect_ratio", F.greatest("width", "height") / F.least("width", "height"))
            .withColumn("source", source_of(F.col("_src"))).withColumnRenamed("_src", "source_uri"))


def _long(df: "DataFrame", scope: str, key, metrics: dict) -> "DataFrame":
    """Aggregates ``metrics`` (name -> Column) grouped by ``key`` -> (scope, key, metric, value) rows."""
    from pyspark.sql import functions as F

    agg = df.groupBy(key.alias("key")).agg(*[c.cast("double").alias(n) for n, c in metrics.items()])
    stack = ", ".join(f"'{n}', `{n}`" for n in metrics)
    return agg.select(F.lit(scope).alias("scope"), F.coalesce(F.col("key").cast("string"), F.lit("(none)")).alias("key"),
                      F.expr(f"stack({len(metrics)}, {stack}) AS (metric, value)"))


def distribution(col: str) -> dict:
    from pyspark.sql import functions as F

    out = {}
    for name, q in QUANTILES:
        out[f"{col}_{name}"] = (F.min(col) if name == "min" else F.max(col) if name == "max"
                                else F.percentile_approx(col, q, 10000))
    out[f"{col}_mean"] = F.avg(col)
    out[f"{col}_std"] = F.stddev_pop(col)
    return out


def scopes(df: "DataFrame") -> dict[str, object]:
    from pyspark.sql import functions as F

    label = F.coalesce(F.col("label"), F.lit("(none)"))
    return {
        "dataset": F.lit("all"),
        "label": label,
        "split": F.col("split"),
        "label_split": F.concat_ws("/", label, F.col("split")),
        "source": F.col("source"),
        "format": F.coalesce(F.col("format"), F.lit("(unknown)")),
    }


def stats(spark: "SparkSession", df: "DataFrame", images: "DataFrame", counts: dict[str, int],
          reject_reasons: dict[str, int]) -> "DataFrame":
    """The ``stats`` rows (scope, key, metric, value) of the analysed frame ``df``; ``counts`` holds
    the totals the caller measured once (curated, images, duplicates, source_objects) and
    ``reject_reasons`` the rejects per reason."""
    from pyspark.sql import functions as F

    total = F.lit(counts["curated"])
    parts = []
    sc = scopes(df)
    for scope, key in sc.items():
        metrics = {"count": F.count(F.lit(1)), "share": F.count(F.lit(1)) / total}
        if scope in ("dataset", "label", "split"):
            for col in (*SIZES, *SCORES):
                metrics.update(distribution(col))
            for flag in QUALITY_FLAGS:
                metrics[f"flag_rate_{flag}"] = F.avg(F.array_contains("flags", flag).cast("double"))
        parts.append(_long(df, scope, key, metrics))
    parts.append(channel_stats(spark, df))
    # Over the tables curated came from: flags of every decoded image, duplicates, rejects.
    n_images, n_dups, source_objects = counts["images"], counts["duplicates"], counts["source_objects"]
    flagged = images.select(F.explode("flags").alias("flag")).groupBy("flag").count().collect()
    rows = [("images", "all", "count", float(n_images)),
            ("duplicates", "all", "count", float(n_dups)),
            ("duplicates", "all", "rate", n_dups / n_images if n_images else None),
            ("source_objects", "all", "count", float(source_objects))]
    rows += [("flag", r["flag"], "rate_in_images", r["count"] / n_images) for r in flagged]
    for reason, n in sorted(reject_reasons.items()):
        rows += [("reject_reason", reason, "count", float(n)),
                 ("reject_reason", reason, "rate", n / source_objects if source_objects else None)]
    parts.append(spark.createDataFrame(rows, STATS_COLUMNS))
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


# --- per-channel mean and std: one distributed pass over the pixels -------------------------------

SUMS = "label string, n double, s_R double, s_G double, s_B double, q_R double, q_G double, q_B double"


def _channel_sums(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Per partition and label: pixels, per-channel sums and sums of squares (float64)."""
    from ptdm_spark.imaging.cv import configure_worker
    from ptdm_spark.imaging.summary import channel_sums

    configure_worker()
    acc: dict[str, np.ndarray] = {}
    for batch in batches:
        for label, data in zip(batch["label"].tolist(), batch["image"].tolist()):
            got = channel_sums(data)
            if got is None:
                continue
            n, s, q = got
            key = "(none)" if label is None else label
            a = acc.setdefault(key, np.zeros(7, np.float64))
            a[0] += n
            a[1:4] += s
            a[4:7] += q
    yield pd.DataFrame([[k, *v] for k, v in acc.items()],
                       columns=["label", "n", "s_R", "s_G", "s_B", "q_R", "q_G", "q_B"])


def channel_stats(spark: "SparkSession", df: "DataFrame") -> "DataFrame":
    """``channel_mean_<c>`` / ``channel_std_<c>`` rows for the dataset and each label: exact, over
    every pixel of every curated image (normalized to 0..1), from one pass of sums."""
    from pyspark.sql import functions as F

    sums = df.select("label", "image").mapInPandas(_channel_sums, SUMS)
    per_label = sums.groupBy("label").agg(*[F.sum(c).alias(c) for c in
                                            ("n", "s_R", "s_G", "s_B", "q_R", "q_G", "q_B")]).collect()
    rows = []
    total = np.zeros(7, np.float64)
    for r in per_label:
        v = np.array([r[c] for c in ("n", "s_R", "s_G", "s_B", "q_R", "q_G", "q_B")], np.float64)
        total += v
        rows += _channel_rows("label", r["label"], v)
    if total[0]:
        rows += _channel_rows("dataset", "all", total)
    return spark.createDataFrame(rows, STATS_COLUMNS)


def _channel_rows(scope: str, key: str, v: np.ndarray) -> list[tuple]:
    from ptdm_spark.imaging.summary import mean_std

    mean, std = mean_std(v[0], v[1:4], v[4:7])
    return ([(scope, key, f"channel_mean_{c}", float(m)) for c, m in zip(CHANNELS, mean)]
            + [(scope, key, f"channel_std_{c}", float(s)) for c, s in zip(CHANNELS, std)]
            + [(scope, key, "pixels", float(v[0]))])


# --- correlations ----------------------------------------------------------------------------------


def correlations(spark: "SparkSession", df: "DataFrame") -> "DataFrame":
    """Pearson and Spearman coefficients between the quality scores, width, height and byte size,
    over the images that have all of them. Pearson: one aggregation of ``corr`` for every pair;
    Spearman: Spark ML's distributed ``Correlation`` (it ranks each column in Spark)."""
    from pyspark.sql import functions as F

    cols = list(CORRELATED)
    num = df.select(*[F.col(c).cast("double") for c in cols]).dropna()
    pairs = [(a, cols[j]) for i, a in enumerate(cols) for j in range(i + 1, len(cols))]
    # corr() divides by zero under ANSI SQL when a column is constant; no coefficient there instead.
    pearson = [F.try_divide(F.covar_pop(a, b), F.stddev_pop(a) * F.stddev_pop(b)).alias(f"{a}|{b}") for a, b in pairs]
    got = num.agg(F.count(F.lit(1)).alias("n"), *pearson).first()
    rows = []
    if got["n"] >= 2:
        from pyspark.ml.feature import VectorAssembler
        from pyspark.ml.stat import Correlation

        rows += [("pearson", a, b, _finite(got[f"{a}|{b}"])) for a, b in pairs]
        vec = VectorAssembler(inputCols=cols, outputCol="v").transform(num).select("v")
        m = Correlation.corr(vec, "v", "spearman").first()[0].toArray()
        rows += [("spearman", a, b, _finite(m[cols.index(a), cols.index(b)])) for a, b in pairs]
    return spark.createDataFrame(rows, "method string, a string, b string, value double")


def _finite(x) -> float | None:
    return None if x is None or np.isnan(x) else float(x)
