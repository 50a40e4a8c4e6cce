"""Duplicates, found and recorded (phase one); ``curate`` removes them (phase two).

Images are grouped into *components*: images with identical normalized pixels, plus (method
``phash``) images whose pHashes are linked by checked near-duplicate pairs, and (method ``flat``)
flat images of nearly the same colour. The pairs come
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
    """Images whose pHash means something: big enough for the 32x32 hash thumbnail, and without
    the flags ``skip_flags`` (by default near_constant: the DCT of a flat image is noise). Low-
    information images (logos, diagrams) take part: their pairs are checked on colour too."""
    return F.col("phash").isNotNull() & (F.least("width", "height") >= min_side) & ~any_flag(skip_flags)


def phash_small(min_side: int, small_min_side: int, skip_flags: Sequence[str]) -> Column:
    """Images from ``small_min_side`` up to ``min_side`` pixels a side, without ``skip_flags``:
    searched against the eligible images' pHashes only (a logo shrunk to a quarter of 50 px)."""
    side = F.least("width", "height")
    return (F.col("phash").isNotNull() & (side < min_side) & (side >= small_min_side)
            & ~any_flag(skip_flags))


def band_rows(hashes: DataFrame, masks: Sequence[int], extra: Sequence[str] = ()) -> DataFrame:
    """(phash, is_new, *extra) -> one row per band key: (band, key = phash & mask, phash, is_new,
    *extra)."""
    # One SQL expression, not two Column objects per band built through py4j (91 bands: 1.5 s).
    bands = F.expr("array(" + ", ".join(f"named_struct('band', {i}, 'mask', CAST({int(m)} AS BIGINT))"
                                        for i, m in enumerate(masks)) + ")")
    return (hashes.select("phash", "is_new", *extra, F.explode(bands).alias("b"))
            .select(F.col("b.band").alias("band"), (F.col("phash").bitwiseAND(F.col("b.mask"))).alias("key"),
                    "phash", "is_new", *extra))


def near_pairs(hashes: DataFrame, masks: Sequence[int], max_distance: int, partitions: int,
               run_id: str, all_new: bool, cross: bool = False) -> DataFrame:
    """Verified pairs (a < b) of distinct hashes within ``max_distance``, at least one of them new.

    Args:
        hashes: distinct (phash, is_new); old hashes were searched by an earlier run. With
            ``cross``, (phash, is_new, small) and only pairs of a small and a not-small row count
            (a value may come once on each side).
        masks: the band masks (``hashing.band_masks``).
        partitions: buckets are spread over this many tasks.
        all_new: nothing was searched before (skips keeping only buckets that hold a new hash).
    """
    rows = band_rows(hashes, masks, ("small",) if cross else ())
    if cross:  # only buckets that hold a small value can make a pair
        rows = rows.join(rows.filter("small").select("band", "key").distinct(), ["band", "key"], "left_semi")
    if not all_new:
        new_keys = rows.filter("is_new").select("band", "key").distinct()
        rows = rows.join(new_keys, ["band", "key"], "left_semi")
    pairs = (rows.repartition(partitions, "band", "key").sortWithinPartitions("band", "key")
             .mapInPandas(udfs.bucket_pairs(max_distance, cross), "a long, b long, distance int")
             .dropDuplicates(["a", "b"]))
    return schemas.conform(pairs.withColumn("run_id", F.lit(run_id)), schemas.PHASH_PAIRS)


def image_edges(pairs: DataFrame, eligible: DataFrame, confirm_above: int, dhash_max: int,
                colour_max: float, detail_max: float, alpha_max: float) -> DataFrame:
    """Verified near-duplicate pairs of *images* (a < b, image ids) from the near pairs of their
    pHashes, and from images that share one pHash.

    A pair counts when a pHash of one (whole or inner) and a pHash of the other differ in at most
    ``confirm_above`` bits, or farther (up to the search radius) with dHashes within ``dhash_max``; and when the two look alike
    (``hashing.pairs_alike``: colour within ``colour_max`` and, with detail thumbnails, their
    most different part within ``detail_max``; where both have transparency, its shape within
    ``alpha_max``). A pair with an image processed before the thumbnails existed is checked on
    what both have.

    Args:
        pairs: (a, b, distance) near pairs of distinct pHashes.
        eligible: (image_id, phash, phash_inner, dhash, colour_thumb, detail_thumb, alpha_thumb) of the images
            taking part (phash_inner: the whole pHash where an image has no inner one).
    """
    # Every image stands for its whole and its inner pHash value (the same value once).
    vals = eligible.select("image_id", "dhash", "colour_thumb", "detail_thumb", "alpha_thumb", "small",
                           F.explode(F.array_distinct(F.array("phash", "phash_inner"))).alias("value"))

    def side(x: str) -> DataFrame:
        return vals.select(F.col("value").alias(x), F.col("image_id").alias(f"id_{x}"),
                           F.col("dhash").alias(f"d_{x}"), F.col("colour_thumb").alias(f"t_{x}"),
                           F.col("detail_thumb").alias(f"u_{x}"), F.col("alpha_thumb").alias(f"v_{x}"),
                           F.col("small").alias(f"s_{x}"))

    across = pairs.select("a", "b", "distance").join(side("a"), "a").join(side("b"), "b")
    # Images sharing a value: each pair once, never two small ones (b is never small; a small a
    # pairs with every b, two others once, by id).
    within = (side("a").join(side("b").filter(~F.col("s_b")), F.col("a") == F.col("b"))
              .filter(F.col("s_a") | (F.col("id_a") < F.col("id_b"))).withColumn("distance", F.lit(0)))
    cols = ["id_a", "id_b", "t_a", "t_b", "u_a", "u_b", "v_a", "v_b"]
    keep = ["distance", "d_a", "d_b", "s_a", "s_b"]
    cand = (across.select(*cols, *keep).unionByName(within.select(*cols, *keep))
            .filter(~(F.col("s_a") & F.col("s_b")))  # two small images never pair
            .filter((F.col("distance") <= confirm_above)
                    | (F.bit_count(F.col("d_a").bitwiseXOR(F.col("d_b"))) <= dhash_max)))
    # One row per image pair (several value pairs can stand for it), smaller id first.
    flipped = [F.col(c.replace("_a", "_x").replace("_b", "_a").replace("_x", "_b")).alias(c) for c in cols]
    cand = (cand.filter(F.col("id_a") < F.col("id_b")).select(*cols)
            .unionByName(cand.filter(F.col("id_a") > F.col("id_b")).select(*flipped))
            .dropDuplicates(["id_a", "id_b"]))
    return cand.mapInPandas(_look_alike(colour_max, detail_max, alpha_max), "a string, b string")


def _binaries(series):
    """A pandas column of thumbnails -> an object array of bytes, None where missing (None, NA,
    or the NaN a left merge leaves)."""
    import numpy as np
    import pandas as pd

    out = np.empty(len(series), object)
    out[:] = [None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else bytes(v)
              for v in series]
    return out


def _look_alike(colour_max: float, detail_max: float, alpha_max: float):
    """mapInPandas: (id_a, id_b, t_a, t_b, u_a, u_b, v_a, v_b) -> the (a, b) that look alike
    (``hashing.pairs_alike``)."""
    import pandas as pd

    from ptdm_spark.imaging import hashing

    def fn(batches):
        for df in batches:
            ok = hashing.pairs_alike(*(_binaries(df[c]) for c in ("t_a", "t_b", "u_a", "u_b")), colour_max, detail_max,
                                     _binaries(df["v_a"]), _binaries(df["v_b"]), alpha_max)
            yield pd.DataFrame({"a": df["id_a"][ok].to_numpy(), "b": df["id_b"][ok].to_numpy()})

    return fn


GROUP_NODES = ("image_id string, pixels long, phash long, phash_inner long, colour_thumb binary, "
               "detail_thumb binary, alpha_thumb binary, pixel_sha256 string, small boolean")


def bounded_groups(edges, nodes, member_max: int, colour_max: float, detail_max: float, alpha_max: float):
    """pandas (a, b) edges and (GROUP_NODES) nodes of one graph -> pandas (image_id, kept_id):
    groups whose kept image (largest resolution, then smallest id) is near every member
    (:func:`ptdm_spark.imaging.graph.bounded_groups`, :func:`ptdm_spark.imaging.hashing.near_kept`)."""
    import numpy as np
    import pandas as pd

    from ptdm_spark.imaging import graph, hashing

    for c in ("phash", "phash_inner"):  # a float64 pHash has lost its low bits: distances would be wrong
        if nodes[c].dtype.kind != "i":
            raise TypeError(f"bounded_groups: {c} must be an integer column, not {nodes[c].dtype}")
    nodes = nodes.sort_values(["pixels", "image_id"], ascending=[False, True]).reset_index(drop=True)
    index = pd.Index(nodes["image_id"])

    a, b = index.get_indexer(edges["a"]), index.get_indexer(edges["b"])
    near = hashing.near_kept(nodes["phash"].to_numpy(np.int64), _binaries(nodes["colour_thumb"]),
                             _binaries(nodes["detail_thumb"]),
                             nodes["pixel_sha256"].to_numpy(), member_max, colour_max, detail_max, checked=(a, b),
                             inner=nodes["phash_inner"].to_numpy(np.int64), small=nodes["small"].to_numpy(bool),
                             alphas=_binaries(nodes["alpha_thumb"]), alpha_max=alpha_max)
    kept = graph.bounded_groups(len(nodes), a, b, np.arange(len(nodes)), near)
    return pd.DataFrame({"image_id": nodes["image_id"], "kept_id": nodes["image_id"].to_numpy()[kept]})


def group_node_columns() -> list[str]:
    return [c.split()[0] for c in GROUP_NODES.split(", ")]


def groups_in_memory(edges: DataFrame, nodes: DataFrame, member_max: int, colour_max: float,
                     detail_max: float, alpha_max: float) -> DataFrame:
    """:func:`bounded_groups` of the whole graph on the driver: (image_id, kept_id) of every image
    with an edge. For a few million edges at most.

    Thumbnails (3.8 KB an image, 5.9 KB with transparency) are fetched only for the images of components with more than
    two images: in a component of two the only pair is an edge, checked already, so the group
    bound never looks at them (at a million images most components are pairs)."""
    import numpy as np
    import pandas as pd

    from ptdm_spark.imaging import graph

    e = edges.select("a", "b").toPandas()
    codes, names = pd.factorize(pd.concat([e["a"], e["b"]], ignore_index=True))
    node, comp = graph.components(codes[:len(e)], codes[len(e):])
    _, inv, counts = np.unique(comp, return_inverse=True, return_counts=True)
    ids = edges.select(F.col("a").alias("image_id")).union(edges.select("b")).distinct()
    thumbs = ["colour_thumb", "detail_thumb", "alpha_thumb"]
    n = nodes.join(ids, "image_id", "left_semi").drop(*thumbs).toPandas()
    wanted = pd.DataFrame({"image_id": np.asarray(names)[node[counts[inv] > 2]]})
    if len(wanted):
        spark = edges.sparkSession
        t = nodes.join(spark.createDataFrame(wanted, "image_id string"), "image_id", "left_semi") \
            .select("image_id", *thumbs).toPandas()
        n = n.merge(t, on="image_id", how="left")
    else:
        n = n.assign(**{c: None for c in thumbs})
    out = bounded_groups(e, n, member_max, colour_max, detail_max, alpha_max)
    return edges.sparkSession.createDataFrame(out, "image_id string, kept_id string")


def groups_in_spark(edges: DataFrame, nodes: DataFrame, node_comp: DataFrame, member_max: int,
                    colour_max: float, detail_max: float, alpha_max: float) -> DataFrame:
    """:func:`bounded_groups` per connected component (``node_comp``: node, comp), in Spark tasks.

    Nodes and edges of a component meet through ``cogroup``, each side keeping its own types: in
    one frame with nulls for the other side's columns, pandas would turn the 64-bit pHashes into
    float64 and lose their low bits (two hashes 24 bits apart came out 15 apart).
    """
    comp = node_comp.select(F.col("node").alias("image_id"), "comp")
    # Both sides come from ``comp``: a fresh alias of the key on each, or cogroup finds it ambiguous.
    n = nodes.join(comp, "image_id").select(F.col("comp").alias("comp"), *group_node_columns())
    e = edges.join(comp.withColumnRenamed("image_id", "a"), "a").select(F.col("comp").alias("comp"), "a", "b")

    def per_component(nodes_pd, edges_pd):
        if nodes_pd.empty:
            import pandas as pd

            return pd.DataFrame({"image_id": pd.Series([], dtype=object), "kept_id": pd.Series([], dtype=object)})
        return bounded_groups(edges_pd[["a", "b"]], nodes_pd.drop(columns="comp"), member_max, colour_max,
                              detail_max, alpha_max)

    return (n.groupBy("comp").cogroup(e.groupBy("comp"))
            .applyInPandas(per_component, "image_id string, kept_id string"))


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


def flat_colours(images: DataFrame, searched: Column | None) -> DataFrame:
    """(image_id, pixels, pixel_sha256, flat_rgb) of the flat images: flag near_constant, their
    channel sums stored (``pixel_sums``), and not taking part in the pHash search (``searched``:
    who does; None when it is off); flat_rgb = the mean colour as [R, G, B] levels 0..255."""
    n = F.col("pixel_sums")[0]
    flat = any_flag(["near_constant"]) & F.col("pixel_sums").isNotNull() & (n > 0)
    if searched is not None:
        flat &= ~F.coalesce(searched, F.lit(False))
    level = [F.round(F.col("pixel_sums")[i] / n * 255).cast("int") for i in (1, 2, 3)]
    return images.filter(flat).select("image_id", (F.col("width").cast("long") * F.col("height")).alias("pixels"),
                                      "pixel_sha256", F.array(*level).alias("flat_rgb"))


FLAT_COLOURS_MAX = 100_000  # distinct flat colours grouped on the driver (levels: at most 256^3)


def flat_groups(flat: DataFrame, max_distance: float) -> DataFrame | None:
    """(pixel_sha256, kept_id, flat_rgb) of the ``flat_colours`` rows, one per distinct pixels
    (None without any): each joins the group of the first flat image (largest resolution, then
    smallest id) within ``max_distance`` (0..1) of it in every channel
    (:func:`ptdm_spark.imaging.graph.centre_groups` over the distinct colours, on the driver).
    Over ``FLAT_COLOURS_MAX`` distinct colours, cells of ``max_distance`` a side in Spark instead
    (members still within ``max_distance`` of their kept image; the groups differ a little from
    the driver's). Keyed by pixels, so that a copy with the same pixels but no channel sums
    (processed before they existed) joins the same group."""
    import numpy as np
    import pandas as pd

    from ptdm_spark.imaging import graph

    top = F.min(F.struct((-F.col("pixels")).alias("p"), F.col("image_id").alias("id")))
    colours = flat.groupBy("flat_rgb").agg(top.alias("top")).limit(FLAT_COLOURS_MAX + 1).collect()
    if not colours:
        return None
    if len(colours) > FLAT_COLOURS_MAX:
        side = max(1, int(max_distance * 255))
        cell = F.transform("flat_rgb", lambda v: F.floor(v / side))
        w = Window.partitionBy(cell).orderBy(F.desc("pixels"), F.asc("image_id"))
        kept = flat.select("pixel_sha256", F.first("image_id").over(w).alias("kept_id"), "flat_rgb")
    else:
        colours.sort(key=lambda r: (r["top"]["p"], r["top"]["id"]))
        rgb = np.array([r["flat_rgb"] for r in colours], np.float64).reshape(-1, 3)
        centre = graph.centre_groups(rgb / 255.0, max_distance)
        table = pd.DataFrame({"flat_rgb": [list(map(int, v)) for v in rgb],
                              "kept_id": [colours[c]["top"]["id"] for c in centre]})
        table = flat.sparkSession.createDataFrame(table, "flat_rgb array<int>, kept_id string")
        kept = flat.join(F.broadcast(table), "flat_rgb").select("pixel_sha256", "kept_id", "flat_rgb")
    return kept.groupBy("pixel_sha256").agg(F.min("kept_id").alias("kept_id"), F.first("flat_rgb").alias("flat_rgb"))


def members(images: DataFrame, groups: DataFrame | None, eligible: Column | None, pixel: bool,
            flat: DataFrame | None = None) -> DataFrame:
    """Every image with its component key (``comp``) and, for flat images, ``flat_rgb``.

    Images eligible for near-duplicate matching, and small images with a verified pair, belong
    to the group of their kept image (``groups``: image_id, kept_id; an eligible image without a
    verified pair is its own group); flat images, and any image with their pixels, to the group
    of theirs (``flat``: pixel_sha256, kept_id, flat_rgb). The others are grouped
    by identical pixels (or stand alone when the pixel method is off).
    """
    alone = F.concat(F.lit("x:"), F.col("pixel_sha256")) if pixel else F.concat(F.lit("i:"), F.col("image_id"))
    df = images
    if flat is not None:
        df = df.join(flat.select("pixel_sha256", F.col("kept_id").alias("_flat"), "flat_rgb"), "pixel_sha256", "left")
        alone = F.when(F.col("_flat").isNotNull(), F.concat(F.lit("f:"), F.col("_flat"))).otherwise(alone)
    else:
        df = df.withColumn("flat_rgb", F.lit(None).cast("array<int>"))
    if eligible is None:
        comp = alone
    else:
        df = df.withColumn("_eligible", eligible)
        if groups is not None:
            df = df.join(groups.select("image_id", F.col("kept_id").alias("_kept")), "image_id", "left")
        else:
            df = df.withColumn("_kept", F.lit(None).cast("string"))
        comp = (F.when(F.col("_kept").isNotNull(), F.concat(F.lit("p:"), F.col("_kept")))
                .when(F.col("_eligible"), F.concat(F.lit("p:"), F.col("image_id"))).otherwise(alone))
    return df.withColumn("comp", comp)


def duplicates(members: DataFrame, run_id: str) -> DataFrame:
    """Every member but the kept one -> a ``duplicates`` row (method pixel, phash or flat;
    distance to kept: for phash and pixel the fewest bits between a pHash of the member and a
    pHash of the kept image, whole or inner; for flat the largest difference of their mean
    colours in any channel, in levels 0..255). ``members`` needs phash_inner (the whole pHash
    where an image has none) and flat_rgb."""
    w = Window.partitionBy("comp").orderBy(F.desc("pixels"), F.asc("image_id"))
    ranked = (
        members.withColumn("pixels", F.col("width").cast("long") * F.col("height"))
        .withColumn("kept_id", F.first("image_id").over(w))
        .withColumn("kept_pixel", F.first("pixel_sha256").over(w))
        .withColumn("kept_phash", F.first("phash").over(w))
        .withColumn("kept_inner", F.first("phash_inner").over(w))
        .withColumn("kept_rgb", F.first("flat_rgb").over(w))
    )

    def bits(x: str, y: str) -> Column:
        return F.bit_count(F.col(x).bitwiseXOR(F.col(y)))

    same_pixels = F.col("pixel_sha256") == F.col("kept_pixel")
    flat = F.col("comp").startswith("f:")
    levels = F.array_max(F.zip_with("flat_rgb", "kept_rgb", lambda x, y: F.abs(x - y)))
    out = (
        ranked.filter(F.col("image_id") != F.col("kept_id"))
        .withColumn("method", F.when(same_pixels, F.lit("pixel")).when(flat, F.lit("flat")).otherwise(F.lit("phash")))
        .withColumn("distance", F.when(same_pixels, F.lit(0)).when(flat, levels)
                    .otherwise(F.least(bits("phash", "kept_phash"), bits("phash", "kept_inner"),
                                       bits("phash_inner", "kept_phash"), bits("phash_inner", "kept_inner"))))
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
