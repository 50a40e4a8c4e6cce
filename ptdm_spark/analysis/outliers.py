"""Images anomalous within their label: robust z-score (median / MAD) per score and per label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# 0.6745 = the 75th percentile of the standard normal: makes the MAD a consistent estimate of the
# standard deviation, so the threshold reads like a z-score (Iglewicz & Hoaglin).
MAD_SCALE = 0.6745


def outliers(df: "DataFrame", scores: Sequence[str], threshold: float,
             medians: Mapping[tuple[str, str], float] | None = None) -> "DataFrame":
    """(image_id, score, label, value, median, mad, robust_z, source_uri) of every image whose
    ``|0.6745 (value - median) / MAD|`` within its label exceeds ``threshold``. Labels whose MAD is
    0 (half the values identical) have no outliers on that score: the rule is undefined there.
    ``medians``: (label key, score) -> the score's median within the label when the caller
    measured them already (``analyze``: the stats' label scope, whose key is the label with NULL
    as ``(none)``); else one aggregation measures them."""
    from pyspark.sql import functions as F

    from ptdm_spark.analysis.stats import scopes

    if not scores:
        return None
    # Every score at once, in long form: one pass of medians and one of deviations for all scores
    # and labels (not a join chain per score).
    stack = ", ".join(f"'{s}', CAST(`{s}` AS DOUBLE)" for s in scores)
    v = (df.select("image_id", "label", "source_uri", F.expr(f"stack({len(scores)}, {stack}) AS (score, value)"))
         .dropna(subset=["value"]))
    if medians is not None and all(any(k[1] == s for k in medians) for s in scores):
        known = df.sparkSession.createDataFrame(
            [(label, s, m) for (label, s), m in medians.items() if s in scores], "m_key string, m_score string, median double")
        dev = v.join(F.broadcast(known), [F.expr(scopes()["label"]) == F.col("m_key"),
                                          v["score"] == F.col("m_score")]).drop("m_key", "m_score")
    else:
        med = v.groupBy(F.col("label").alias("m_label"), F.col("score").alias("m_score")).agg(
            F.percentile_approx("value", 0.5, 100000).alias("median"))
        dev = v.join(med, [v["label"].eqNullSafe(F.col("m_label")), v["score"] == F.col("m_score")]).drop(
            "m_label", "m_score")
    dev = dev.withColumn("dev", F.abs(F.col("value") - F.col("median")))
    mad = dev.groupBy(F.col("label").alias("m_label"), F.col("score").alias("m_score")).agg(
        F.percentile_approx("dev", 0.5, 100000).alias("mad"))
    return (dev.join(mad, [dev["label"].eqNullSafe(F.col("m_label")), dev["score"] == F.col("m_score")])
            .drop("m_label", "m_score")
            .filter(F.col("mad") > 0)
            .withColumn("robust_z", F.lit(MAD_SCALE) * (F.col("value") - F.col("median")) / F.col("mad"))
            .filter(F.abs("robust_z") > threshold)
            .select("image_id", "score", "label", "value", "median", "mad", "robust_z", "source_uri"))
