"""Splits that do not leak and do not move, and ``images`` minus duplicates minus excluded
quality flags -> ``curated``.

The split is decided per duplicate component (all near duplicates land together) and stored in
``splits``, which only ever gains rows: once an image has a split it keeps it, whatever is added
later. A new image joins the split of its component when the component already has one; a new
component gets a split by label-stratified quotas (see :func:`assign_new`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ptdm_spark import schemas
from ptdm_spark.transforms.process import any_flag


def unit_hash(key: Column, seed: str) -> Column:
    """A number in [0, 1) from SHA-256(seed + ":" + key): the same key always gets the same number."""
    return F.conv(F.substring(F.sha2(F.concat(F.lit(seed + ":"), key), 256), 1, 8), 16, 10).cast("double") \
        / float(1 << 32)


def with_components(images: DataFrame, dups: DataFrame) -> DataFrame:
    """``images`` plus ``kept_id`` (the component) and ``eligible`` (not a duplicate)."""
    d = dups.select("image_id", F.col("kept_id").alias("_kept"))
    return (images.join(d, "image_id", "left")
            .withColumn("eligible", F.col("_kept").isNull())
            .withColumn("kept_id", F.coalesce("_kept", "image_id")).drop("_kept"))


def quotas(existing: Mapping[str, Mapping[str, int]], new: Mapping[str, int],
           ratios: Mapping[str, float]) -> dict[str, list[tuple[str, int, int]]]:
    """Per stratum, how many of its ``new`` components go to each split, as rank ranges.

    Each split is filled towards ``ratio x (existing + new)`` of the stratum; splits already over
    their share get none. Largest remainders round to whole components, so a fresh stratum of n
    components is off its ratios by less than one component per split.

    Returns:
        stratum -> [(split, first rank, end rank)], ranks 0-based, end exclusive.
    """
    names = [s for s, r in ratios.items() if r > 0]
    out = {}
    for stratum, n in new.items():
        have = existing.get(stratum, {})
        total = n + sum(have.get(s, 0) for s in names)
        want = {s: max(0.0, ratios[s] * total - have.get(s, 0)) for s in names}
        room = sum(want.values())
        share = {s: (want[s] / room if room > 0 else ratios[s]) * n for s in names}
        counts = {s: int(share[s]) for s in names}
        by_rest = sorted(names, key=lambda s: (-(share[s] - counts[s]), names.index(s)))
        for s in by_rest[: n - sum(counts.values())]:
            counts[s] += 1
        ranges, lo = [], 0
        for s in names:
            ranges.append((s, lo, lo + counts[s]))
            lo += counts[s]
        out[stratum] = ranges
    return out


def rank_ranges(existing: Sequence[tuple[str, str, int]], new: Mapping[str, int],
                ratios: Mapping[str, float]) -> list[tuple[str, str, int, int]]:
    """:func:`quotas` from (stratum, split, count) rows, flattened to (stratum, split, lo, hi)."""
    have: dict[str, dict[str, int]] = {}
    for st, sp, n in existing:
        have.setdefault(st, {})[sp] = n
    return [(st, sp, lo, hi) for st, rs in quotas(have, new, ratios).items() for sp, lo, hi in rs]


def stratum(label: Column) -> Column:
    return F.coalesce(label, F.lit(""))


def assign(members: DataFrame, old: DataFrame, keep_source: bool) -> DataFrame:
    """Splits for the images of ``members`` that ``old`` (the ``splits`` table) does not have yet,
    when they can be inherited: the dataset's own split (``keep_source``), or the split most of
    their component's members already have. The rest is left to :func:`assign_new`.

    Returns:
        (image_id, split, origin) rows, plus rows with a null split for images still to place.
    """
    known = members.join(old.select("image_id", "split"), "image_id")
    by_comp = (known.groupBy("kept_id", "split").count()
               .withColumn("r", F.row_number().over(Window.partitionBy("kept_id").orderBy(F.desc("count"), "split")))
               .filter("r = 1").select("kept_id", F.col("split").alias("comp_split")))
    fresh = members.join(old.select("image_id"), "image_id", "left_anti").join(by_comp, "kept_id", "left")
    src = F.col("source_split") if keep_source else F.lit(None).cast("string")
    return fresh.select(
        "image_id", "kept_id", "label", "eligible",
        F.coalesce(src, F.col("comp_split")).alias("split"),
        F.when(src.isNotNull(), F.lit("source")).when(F.col("comp_split").isNotNull(), F.lit("component"))
        .alias("origin"),
    )


def assign_new(pending: DataFrame, ranges: DataFrame, seed: str) -> DataFrame:
    """New components -> split by quota: within each stratum (the kept image's label), components
    are ranked by a hash of their kept id and take consecutive rank ranges (``ranges``: stratum,
    split, lo, hi)."""
    units = (pending.filter("eligible").select("kept_id", stratum(F.col("label")).alias("stratum"))
             .withColumn("u", unit_hash(F.col("kept_id"), seed))
             .withColumn("rank", F.row_number().over(Window.partitionBy("stratum").orderBy("u", "kept_id")) - 1))
    placed = units.join(F.broadcast(ranges), "stratum") \
        .filter((F.col("rank") >= F.col("lo")) & (F.col("rank") < F.col("hi"))).select("kept_id", "split")
    return pending.select("image_id", "kept_id").join(placed, "kept_id").select(
        "image_id", "split", F.lit("assigned").alias("origin"))


def split_rows(df: DataFrame, run_id: str) -> DataFrame:
    out = df.withColumn("run_id", F.lit(run_id)).withColumn("assigned_at", F.current_timestamp())
    return schemas.conform(out, schemas.SPLITS)


def leakage(members: DataFrame, splits: DataFrame, run_id: str) -> DataFrame:
    """Images outside train whose component has a member in train."""
    m = members.select("image_id", "kept_id").join(splits.select("image_id", "split"), "image_id")
    train = m.filter(F.col("split") == "train").groupBy("kept_id") \
        .agg(F.array_sort(F.collect_list("image_id")).alias("train_ids"))
    out = m.filter(F.col("split") != "train").join(train, "kept_id").withColumn("run_id", F.lit(run_id))
    return schemas.conform(out, schemas.LEAKAGE)


def curated(members: DataFrame, splits: DataFrame, images: DataFrame, exclude_flags: Sequence[str],
            run_id: str) -> DataFrame:
    """Kept, not excluded members with their split; the image bytes come from ``images`` (read
    once, at the end)."""
    kept = members.filter(F.col("eligible") & ~any_flag(exclude_flags))
    out = (kept.join(splits.select("image_id", "split"), "image_id")
           .join(images.select("image_id", "image", "encoding"), "image_id")
           .withColumn("run_id", F.lit(run_id)))
    return schemas.conform(out, schemas.CURATED)
