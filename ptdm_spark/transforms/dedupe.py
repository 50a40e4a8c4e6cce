"""Duplicates, found and recorded (phase one); ``curate`` removes them (phase two).

Images are grouped into *components*: images with identical normalized pixels, plus (method
``phash``) images whose pHashes are linked by a chain of near-duplicate pairs. The pairs come
from banded hash keys (see :mod:`ptdm_spark.imaging.hashing`), never from all pairs; the
components are computed on the driver when the pairs fit there (:func:`components_in_memory`),
else in Spark (large-star / small-star rounds, :func:`components`).

The kept image of a component is chosen by a stated, deterministic rule: the largest original
resolution (width x height), then the smallest ``image_id``. Every other member is a
``duplicates`` row naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from ptdm_spark import schemas, udfs
from ptdm_spark.transforms.process import any_flag


def phash_eligible(min_side: int, skip_flags: Sequence[str]) -> Column:
    """Images whose pHash means something: big enough for the 32x32 hash thumbnail, and not
    near-constant or low-information (their hashes are noise, and would chain unrelated images
    into giant components)."""
    return F.col("phash").isNotNull() & (F.least("width", "height") >= min_side) & ~any_flag(skip_flags)


def band_rows(hashes: DataFrame, masks: Sequence[int]) -> DataFrame:
    """(phash, is_new) -> one row per band key: (band, key = phash & mask, phash, is_new)."""
    bands = F.array(*[F.struct(F.lit(i).alias("band"), F.lit(m).cast("long").alias("mask"))
                      for i, m in enumerate(masks)])
    return (hashes.select("phash", "is_new", F.explode(bands).alias("b"))
            .select(F.col("b.band").alias("band"), (F.col("phash").bitwiseAND(F.col("b.mask"))).alias("key"),
                    "phash", "is_new"))


def near_pairs(hashes: DataFrame, masks: Sequence[int], max_distance: int, partitions: int,
               run_id: str, all_new: bool) -> DataFrame:
    """Verified pairs (a < b) of distinct hashes within ``max_distance``, at least one of them new.

    Args:
        hashes: distinct (phash, is_new); old hashes were searched by an earlier run.
        masks: the band masks (``hashing.band_masks``).
        partitions: buckets are spread over this many tasks.
        all_new: nothing was searched before (skips keeping only buckets that hold a new hash).
    """
    rows = band_rows(hashes, masks)
    if not all_new:
        new_keys = rows.filter("is_new").select("band", "key").distinct()
        rows = rows.join(new_keys, ["band", "key"], "left_semi")
    pairs = (rows.repartition(partitions, "band", "key").sortWithinPartitions("band", "key")
             .mapInPandas(udfs.bucket_pairs(max_distance), "a long, b long, distance int")
             .dropDuplicates(["a", "b"]))
    return schemas.conform(pairs.withColumn("run_id", F.lit(run_id)), schemas.PHASH_PAIRS)


def confirmed(pairs: DataFrame, hashes: DataFrame, confirm_above: int, dhash_max: int) -> DataFrame:
    """The pairs (a, b, distance) that count as near duplicates: pHash distance at most
    ``confirm_above``, or farther but confirmed by two images, one with each pHash, whose dHashes
    are within ``dhash_max`` (``hashes``: phash, dhash of the eligible images)."""
    sure = pairs.filter(F.col("distance") <= confirm_above).select("a", "b")
    doubt = pairs.filter(F.col("distance") > confirm_above)
    da = hashes.select(F.col("phash").alias("a"), F.col("dhash").alias("da"))
    db = hashes.select(F.col("phash").alias("b"), F.col("dhash").alias("db"))
    ok = (doubt.join(da, "a").join(db, "b")
          .filter(F.bit_count(F.col("da").bitwiseXOR(F.col("db"))) <= dhash_max).select("a", "b").distinct())
    return sure.unionByName(ok)


def components(edges: DataFrame, checkpoint: Callable[[DataFrame, int], DataFrame],
               max_rounds: int = 64) -> DataFrame:
    """Connected components of the undirected graph ``edges`` (a, b): (node, comp) where comp is
    the smallest node of the node's component. Only nodes with an edge appear.

    Alternating large-star and small-star (Kiveris et al., "Connected Components in MapReduce
    and Beyond", 2014): each step rewires edges towards smaller nodes without changing the
    components, and at the fixed point every component is a star around its smallest node;
    O(log^2 n) rounds, every round a couple of joins over the edges only. ``checkpoint``
    materializes each round's edges (it cuts the lineage, and keeps Spark's size estimates
    from compounding from round to round).
    """
    e = checkpoint(_undirected(edges.select("a", "b")), 0)
    for rnd in range(1, max_rounds + 1):
        nxt = checkpoint(_small_star(checkpoint(_large_star(e), 2 * rnd - 1)), 2 * rnd)
        settled = nxt.exceptAll(e).limit(1).count() == 0 and e.exceptAll(nxt).limit(1).count() == 0
        e = nxt
        if settled:
            return e.select(F.col("b").alias("node"), F.col("a").alias("comp")).unionByName(
                e.select(F.col("a").alias("node"), F.col("a").alias("comp"))).distinct()
    raise RuntimeError(f"components did not settle in {max_rounds} rounds")  # a bug, not bad data


def components_in_memory(edges: DataFrame) -> DataFrame:
    """:func:`components`, computed on the driver (numpy, :mod:`ptdm_spark.imaging.graph`): the
    edges are collected (Arrow), the answer is a local DataFrame. For graphs of a few million
    edges at most; a dozen Spark jobs of the distributed rounds cost more than that."""
    import pandas as pd

    from ptdm_spark.imaging import graph

    pdf = edges.select("a", "b").toPandas()
    nodes, comp = graph.components(pdf["a"].to_numpy(), pdf["b"].to_numpy())
    return edges.sparkSession.createDataFrame(pd.DataFrame({"node": nodes, "comp": comp}), "node long, comp long")


def _undirected(pairs: DataFrame) -> DataFrame:
    """Each undirected edge once, as (a < b)."""
    return (pairs.select(F.least("a", "b").alias("a"), F.greatest("a", "b").alias("b"))
            .filter(F.col("a") != F.col("b")).distinct())


def _large_star(e: DataFrame) -> DataFrame:
    """Every node links its larger neighbours to the smallest node of its neighbourhood (itself included)."""
    both = e.select(F.col("a").alias("u"), F.col("b").alias("v")).unionByName(
        e.select(F.col("b").alias("u"), F.col("a").alias("v")))
    low = both.groupBy("u").agg(F.least(F.min("v"), F.first("u")).alias("m"))
    return _undirected(both.filter(F.col("v") > F.col("u")).join(low, "u")
                       .select(F.col("v").alias("a"), F.col("m").alias("b")))


def _small_star(e: DataFrame) -> DataFrame:
    """Every node links itself and its smaller neighbours to the smallest of them."""
    low = e.groupBy(F.col("b").alias("u")).agg(F.min("a").alias("m"))
    rewired = e.join(low, e["b"] == low["u"]).select(F.col("a"), F.col("m").alias("b"))
    return _undirected(rewired.unionByName(low.select(F.col("u").alias("a"), F.col("m").alias("b"))))


def members(images: DataFrame, node_comp: DataFrame | None, eligible: Column | None, pixel: bool) -> DataFrame:
    """Every image with its component key.

    Images eligible for pHash matching belong to the component of their hash (``node_comp``; a
    hash without near pairs is its own component, so identical hashes always meet). The others
    are grouped by identical pixels (or stand alone when the pixel method is off).
    """
    alone = F.concat(F.lit("x:"), F.col("pixel_sha256")) if pixel else F.concat(F.lit("i:"), F.col("image_id"))
    df = images
    if eligible is None:
        comp = alone
    else:
        df = df.withColumn("_eligible", eligible)
        if node_comp is not None:
            df = df.join(node_comp.select(F.col("node").alias("phash"), F.col("comp").alias("_comp")), "phash", "left")
        else:
            df = df.withColumn("_comp", F.lit(None).cast("long"))
        comp = F.when(F.col("_eligible"), F.concat(F.lit("p:"), F.coalesce("_comp", "phash").cast("string"))) \
            .otherwise(alone)
    return df.withColumn("comp", comp)


def duplicates(members: DataFrame, run_id: str) -> DataFrame:
    """Every member but the kept one -> a ``duplicates`` row (method pixel or phash, distance to kept)."""
    w = Window.partitionBy("comp").orderBy(F.desc("pixels"), F.asc("image_id"))
    ranked = (
        members.withColumn("pixels", F.col("width").cast("long") * F.col("height"))
        .withColumn("kept_id", F.first("image_id").over(w))
        .withColumn("kept_pixel", F.first("pixel_sha256").over(w))
        .withColumn("kept_phash", F.first("phash").over(w))
    )
    same_pixels = F.col("pixel_sha256") == F.col("kept_pixel")
    out = (
        ranked.filter(F.col("image_id") != F.col("kept_id"))
        .withColumn("method", F.when(same_pixels, F.lit("pixel")).otherwise(F.lit("phash")))
        .withColumn("distance", F.when(same_pixels, F.lit(0))
                    .otherwise(F.bit_count(F.col("phash").bitwiseXOR(F.col("kept_phash")))))
        .withColumn("run_id", F.lit(run_id))
    )
    return schemas.conform(out, schemas.DUPLICATES)


def label_conflicts(images: DataFrame, dups: DataFrame, run_id: str) -> DataFrame:
    """Components (and single images with byte-identical copies) whose members carry more than
    one label."""
    m = images.join(dups.select("image_id", "kept_id"), "image_id", "left") \
        .withColumn("kept_id", F.coalesce("kept_id", "image_id"))
    own = F.coalesce("labels", F.when(F.col("label").isNotNull(), F.array("label")), F.array().cast("array<string>"))
    out = (
        m.groupBy("kept_id")
        .agg(F.count(F.lit(1)).cast("int").alias("members"),
             F.array_sort(F.array_distinct(F.flatten(F.collect_list(own)))).alias("labels"),
             F.array_sort(F.collect_list("image_id")).alias("image_ids"))
        .filter(F.size("labels") > 1)
        .withColumn("run_id", F.lit(run_id))
    )
    return schemas.conform(out, schemas.LABEL_CONFLICTS)
