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
    from pyspark.sql import DataFrame

SCORES = ("blur", "brightness", "contrast", "entropy", "channel_spread")
SIZES = ("width", "height", "aspect_ratio", "size_bytes")
CORRELATED = (*SCORES, "width", "height", "size_bytes")
QUANTILES = (("min", None), ("p5", 0.05), ("p50", 0.5), ("p95", 0.95), ("max", None))
CHANNELS = ("R", "G", "B")


def source_of(uri_col):
    """The source an object came from: its archive (``a.tar!/x.png`` -> ``a.tar``), else its folder."""
    from pyspark.sql import functions as F

    archive = F.regexp_extract(uri_col, r"([^/]+)!/", 1)
    folder = F.regexp_extract(uri_col, r"([^/]+)/[^/]+$", 1)
    return F.when(archive != "", archive).otherwise(F.coalesce(F.nullif(folder, F.lit("")), F.lit("/")))


def analysed(curated: "DataFrame", images: "DataFrame", raw: "DataFrame") -> "DataFrame":
    """One row per curated image, without its bytes: its label, split, scores, sizes, format,
    source, and the per-channel pixel sums of its normalized image (:data:`SUM_COLUMNS`) that
    ``process`` stored in ``images.pixel_sums`` (an image's bytes never change once processed).

    Images processed before that column existed keep NULL sums (process never processes an
    image twice): :func:`with_decoded_sums` measures those from their bytes."""
    from pyspark.sql import functions as F

    size = raw.groupBy("image_id").agg(F.min("size_bytes").alias("size_bytes"))
    has = "pixel_sums" in images.columns
    stored = [(F.col("pixel_sums")[i] if has else F.lit(None).cast("double")).alias(c)
              for i, c in enumerate(SUM_COLUMNS)]
    scores = images.select("image_id", "format", "labels", "decoder_warnings", *SCORES,
                           F.col("source_uri").alias("_src"), *stored)
    return (curated.select("image_id", "label", "split", "width", "height", "channels", "flags")
            .join(scores, "image_id", "left").join(size, "image_id", "left")
            .withColumn("aspect_ratio", F.greatest("width", "height") / F.least("width", "height"))
            .withColumn("source", source_of(F.col("_src"))).withColumnRenamed("_src", "source_uri"))


def with_decoded_sums(frame: "DataFrame", curated: "DataFrame") -> "DataFrame":
    """``frame`` (:func:`analysed`) with the pixel sums of its rows that have none measured from
    ``curated``'s bytes, those rows only (decoded at every analysis: nothing stores them)."""
    from pyspark.sql import functions as F

    from ptdm_spark.pipeline.job import log

    log("[analyze] some curated images were processed before process stored their channel sums "
        "(images.pixel_sums is NULL): decoding those to measure them")
    unsummed = curated.select("image_id", "image").join(
        frame.filter(F.col("n").isNull()).select("image_id"), "image_id", "left_semi")
    decoded = unsummed.mapInPandas(_channel_sums, SUMS).select(
        "image_id", *[F.col(c).alias(f"_{c}") for c in SUM_COLUMNS])
    return frame.join(decoded, "image_id", "left").select(
        *[F.coalesce(c, f"_{c}").alias(c) if c in SUM_COLUMNS else c for c in frame.columns])


def scopes() -> dict[str, str]:
    """scope -> its key as a SQL expression over the analysed frame."""
    return {
        "dataset": "'all'",
        "label": "coalesce(label, '(none)')",
        "split": "coalesce(split, '(none)')",
        "label_split": "concat_ws('/', coalesce(label, '(none)'), split)",
        "source": "coalesce(source, '(none)')",
        "format": "coalesce(format, '(unknown)')",
    }


DISTRIBUTED = ("dataset", "label", "split")  # the scopes with distributions and flag rates
CHANNEL_SCOPES = ("dataset", "label")  # the scopes with per-channel means and stds
SUM_COLUMNS = ("n", "s_R", "s_G", "s_B", "q_R", "q_G", "q_B")


def scoped_aggregates(df: "DataFrame") -> list[dict]:
    """Every scope's aggregates in ONE pass over the analysed frame: each row is counted once per
    scope (``stack``), grouped by (scope, key); distributions, flag rates and channel sums are
    aggregated only for the scopes that report them (a null input adds nothing, so a source
    scope with thousands of folders holds no quantile sketches). Returns one dict per
    (scope, key), on the driver: a few rows per label, split and source."""
    from pyspark.sql import functions as F

    sc = scopes()
    stack = ", ".join(f"'{name}', {key}" for name, key in sc.items())
    x = df.select("*", F.expr(f"stack({len(sc)}, {stack}) AS (scope, key)"))

    def only(scopes_: tuple[str, ...], col):
        return F.when(F.col("scope").isin(*scopes_), col)

    aggs = [F.count(F.lit(1)).alias("count")]
    for col in (*SIZES, *SCORES):
        v = only(DISTRIBUTED, F.col(col).cast("double"))
        aggs += [F.min(v).alias(f"{col}_min"), F.max(v).alias(f"{col}_max"), F.avg(v).alias(f"{col}_mean"),
                 F.stddev_pop(v).alias(f"{col}_std"),
                 F.percentile_approx(v, [q for _, q in QUANTILES if q is not None], 10000).alias(f"{col}_q")]
    for flag in QUALITY_FLAGS:
        aggs.append(F.avg(only(DISTRIBUTED, F.array_contains("flags", flag).cast("double")))
                    .alias(f"flag_rate_{flag}"))
    for c in SUM_COLUMNS:
        aggs.append(F.sum(only(CHANNEL_SCOPES, F.col(c))).alias(f"sum_{c}"))
    return [r.asDict() for r in x.groupBy("scope", "key").agg(*aggs).collect()]


def stats_rows(aggregates: list[dict], counts: dict[str, int], reject_reasons: dict[str, int],
               flag_counts: dict[str, int]) -> list[tuple]:
    """The ``stats`` rows (scope, key, metric, value) from :func:`scoped_aggregates`; ``counts``
    holds the totals measured once (curated, images, duplicates, source_objects),
    ``reject_reasons`` the rejects per reason, ``flag_counts`` the decoded images per flag."""
    total = counts["curated"]
    rows: list[tuple] = []
    for a in sorted(aggregates, key=lambda a: (a["scope"], a["key"])):
        scope, key = a["scope"], a["key"]
        rows += [(scope, key, "count", float(a["count"])), (scope, key, "share", a["count"] / total if total else None)]
        if scope in DISTRIBUTED:
            for col in (*SIZES, *SCORES):
                qs = iter(a[f"{col}_q"] or [None] * 3)
                for name, q in QUANTILES:
                    v = a[f"{col}_{name}"] if q is None else next(qs)
                    rows.append((scope, key, f"{col}_{name}", _float(v)))
                rows += [(scope, key, f"{col}_mean", _float(a[f"{col}_mean"])),
                         (scope, key, f"{col}_std", _float(a[f"{col}_std"]))]
            rows += [(scope, key, f"flag_rate_{f}", _float(a[f"flag_rate_{f}"])) for f in QUALITY_FLAGS]
        if scope in CHANNEL_SCOPES and a["sum_n"]:
            rows += _channel_rows(scope, key, np.array([a[f"sum_{c}"] for c in SUM_COLUMNS], np.float64))
    n_images, n_dups, source_objects = counts["images"], counts["duplicates"], counts["source_objects"]
    rows += [("images", "all", "count", float(n_images)),
             ("duplicates", "all", "count", float(n_dups)),
             ("duplicates", "all", "rate", n_dups / n_images if n_images else None),
             ("source_objects", "all", "count", float(source_objects))]
    rows += [("flag", f, "rate_in_images", n / n_images) for f, n in sorted(flag_counts.items()) if n_images]
    for reason, n in sorted(reject_reasons.items()):
        rows += [("reject_reason", reason, "count", float(n)),
                 ("reject_reason", reason, "rate", n / source_objects if source_objects else None)]
    return rows


def _float(v) -> float | None:
    return None if v is None else float(v)


# --- per-channel mean and std: sums per image, in the one pass over the bytes ---------------------

SUMS = "image_id string, n double, s_R double, s_G double, s_B double, q_R double, q_G double, q_B double"


def _channel_sums(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Per image: its pixels, per-channel sums and sums of squares (float64); null when the
    bytes do not decode. Summed per scope in Spark they give exact means and stds."""
    from ptdm_spark.imaging.cv import configure_worker
    from ptdm_spark.imaging.summary import channel_sums

    configure_worker()
    for batch in batches:
        out = np.full((len(batch), 7), np.nan, np.float64)
        for i, data in enumerate(batch["image"].tolist()):
            got = channel_sums(data)
            if got is not None:
                out[i, 0] = got[0]
                out[i, 1:4] = got[1]
                out[i, 4:7] = got[2]
        frame = pd.DataFrame(out, columns=list(SUM_COLUMNS))
        frame.insert(0, "image_id", batch["image_id"].to_numpy())
        yield frame


def _channel_rows(scope: str, key: str, v: np.ndarray) -> list[tuple]:
    from ptdm_spark.imaging.summary import mean_std

    mean, std = mean_std(v[0], v[1:4], v[4:7])
    return ([(scope, key, f"channel_mean_{c}", float(m)) for c, m in zip(CHANNELS, mean)]
            + [(scope, key, f"channel_std_{c}", float(s)) for c, s in zip(CHANNELS, std)]
            + [(scope, key, "pixels", float(v[0]))])


# --- correlations ----------------------------------------------------------------------------------


# Up to this many rows, Spearman's ranks are taken column by column on the frame as it is (each
# column sorted in one partition, no regrouping: twice as fast at 70,000 rows); beyond, each
# column is ranked in its own partition of a long frame, the columns in parallel.
WIDE_RANKS_MAX_ROWS = 2_000_000


def correlations(df: "DataFrame", wide_ranks_max_rows: int = WIDE_RANKS_MAX_ROWS,
                 centre: dict[str, float] | None = None) -> list[tuple]:
    """(method, a, b, value) rows: Pearson and Spearman coefficients between the quality scores,
    width, height and byte size, over the images that have all of them.

    Pearson from one aggregation of plain sums (:func:`_pearson`); Spearman is Pearson of the
    ranks (ties get their average rank, as in scipy's ``spearmanr``), ranked in Spark with window
    functions, then one more such aggregation. Up to ``wide_ranks_max_rows`` rows every column
    is ranked in place, one window after another (a window without partitions sorts the column
    in one task: fine for a few million rows, and no regrouping; each sort carries only the
    ranked columns); beyond, the columns are stacked into one long frame, each column its own
    window partition (one sort per column, in parallel), and the ranks meet again by image.
    ``centre``: a value near each column's mean (``analyze`` passes the dataset means it
    measured; else one small aggregation finds them). The tests check both against numpy and
    pandas (1e-9); on Fashion-MNIST they equal the covar_pop / stddev_pop form they replaced to
    1.5e-14."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cols = list(CORRELATED)
    num = df.select("image_id", *[F.col(c).cast("double") for c in cols]).dropna()
    pairs = [(a, cols[j]) for i, a in enumerate(cols) for j in range(i + 1, len(cols))]

    def average_rank(window):
        # A value's average rank among its ties is halfway between its first rank (rank()) and
        # its last: the rows up to and including its ties, which is what count() over an ordered
        # window counts (its default frame ends at the current row's last peer). One sort.
        return (F.rank().over(window) + F.count(F.lit(1)).over(window)) / 2.0

    if centre is None or any(centre.get(c) is None for c in cols):
        centre = num.agg(*[F.avg(c).alias(c) for c in cols]).first().asDict()
    # No rows (nothing curated, or a column NULL everywhere): no mean, and no coefficient below.
    centre = {c: 0.0 if centre.get(c) is None else float(centre[c]) for c in cols}
    n, values = _pearson(num, cols, centre)
    if n < 2:
        return []
    mid = {c: (n + 1) / 2.0 for c in cols}  # the mean of the average ranks 1..n, whatever the ties
    if n <= wide_ranks_max_rows:
        ranked = num.select(*cols)
        for c in cols:
            ranked = ranked.withColumn(c, average_rank(Window.orderBy(c)))
        # Spark warns about every window without partitions ("moving all data to a single
        # partition"): here that is the point, so not on the user's console for these queries.
        from ptdm_spark.session import log_level

        with log_level(df.sparkSession, "org.apache.spark.sql.execution.window.WindowExec", "ERROR"):
            _, ranks = _pearson(ranked, cols, mid)
    else:
        stack = ", ".join(f"'{c}', `{c}`" for c in cols)
        long = num.select("image_id", F.expr(f"stack({len(cols)}, {stack}) AS (col, v)"))  # one row per id
        ranked = long.withColumn("rank", average_rank(Window.partitionBy("col").orderBy("v")))
        _, ranks = _pearson(ranked.groupBy("image_id").pivot("col", cols).agg(F.first("rank")), cols, mid)
    return [("pearson", a, b, values[a, b]) for a, b in pairs] + [("spearman", a, b, ranks[a, b]) for a, b in pairs]


def _pearson(frame: "DataFrame", cols: list[str], centre: dict[str, float]
             ) -> tuple[int, dict[tuple[str, str], float | None]]:
    """(rows, the Pearson coefficient of every pair of ``cols``) from ONE aggregation of plain
    sums: the count, each column's min and max, and the sums of ``d`` and of every product
    ``d_a d_b`` of the values shifted by ``centre`` (``d = x - centre``: the nearer the mean, the
    fewer digits the covariance ``mean(d_a d_b) - mean(d_a) mean(d_b)`` loses to cancellation). Sums are
    the cheapest aggregates Spark has (one pass, a small generated loop, where Spark's
    ``covar_pop`` and ``stddev_pop`` per pair took twice as long); the algebra is done on the
    driver. A constant column (min = max) has no coefficient."""
    from pyspark.sql import functions as F

    d = {c: F.col(c) - F.lit(float(centre[c])) for c in cols}
    aggs = [F.count(F.lit(1)).alias("n")]
    for c in cols:
        aggs += [F.min(c).alias(f"lo {c}"), F.max(c).alias(f"hi {c}"), F.sum(d[c]).alias(f"s {c}")]
    aggs += [F.sum(d[a] * d[b]).alias(f"p {a} {b}") for i, a in enumerate(cols) for b in cols[i:]]
    r = frame.agg(*aggs).first()
    n = int(r["n"])
    coef: dict[tuple[str, str], float | None] = {}
    if n:
        mean = {c: r[f"s {c}"] / n for c in cols}
        cov = {(a, b): r[f"p {a} {b}"] / n - mean[a] * mean[b] for i, a in enumerate(cols) for b in cols[i:]}
        for i, a in enumerate(cols):
            for b in cols[i + 1:]:
                va, vb = cov[a, a], cov[b, b]
                varies = r[f"lo {a}"] != r[f"hi {a}"] and r[f"lo {b}"] != r[f"hi {b}"]
                v = _finite(cov[a, b] / (np.sqrt(va) * np.sqrt(vb))) if varies and va > 0 and vb > 0 else None
                coef[a, b] = None if v is None else max(-1.0, min(1.0, v))  # rounding past ±1
    return n, coef


def _finite(x) -> float | None:
    return None if x is None or np.isnan(x) else float(x)
