"""Near duplicates in Spark: banded search, components, incremental merges, label conflicts,
stable stratified splits, source splits and the leakage report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

import numpy as np
import pytest
from pyspark.testing import assertDataFrameEqual

from tests.imagefiles import encode, folder_icon, photo, rgba_drawing

pytestmark = pytest.mark.spark


def _flip(h: int, bits) -> int:
    v = h & 0xFFFFFFFFFFFFFFFF
    for b in bits:
        v ^= 1 << int(b)
    return v - (1 << 64) if v >= 1 << 63 else v


def _image(image_id: str, phash: int, *, label=None, side=64, pixel=None, flags=(), source_split=None, dhash=0,
           thumb=None, detail=None, inner=None, alpha=None):
    now = dt.datetime(2026, 1, 1)
    return dict(image_id=image_id, label=label, labels=[label] if label else [], source_split=source_split,
                source_uri=f"file:/src/{image_id}.png", source_count=1, format="png", width=side, height=side,
                channels=3, bit_depth=8, orientation=1, out_width=side, out_height=side,
                pixel_sha256=pixel or f"px-{image_id}", phash=phash, dhash=dhash, colour_thumb=thumb, blur=100.0, brightness=0.5,
                contrast=0.2, entropy=6.0, aspect_ratio=1.0, channel_spread=20.0, flags=list(flags),
                image=b"png", encoding="png", decoder_warnings=None, faces=None, pixel_sums=None, detail_thumb=detail,
                phash_inner=inner, alpha_thumb=alpha, run_id="setup",
                processed_at=now)


def _add_images(spark, cfg, dataset, images):
    from ptdm_spark import schemas
    from ptdm_spark.io import delta

    df = spark.createDataFrame([tuple(r[f.name] for f in schemas.IMAGES.fields) for r in images], schemas.IMAGES)
    path = cfg.lakehouse.table_path(dataset, "images")
    delta.merge_into(spark, df, path, ("image_id",))
    delta.register(spark, dataset, "images", path)


def _stage(spark, cfg, dataset, name):
    from ptdm_spark import stages

    with stages.job(spark, cfg, name, dataset, []) as run:
        return stages.run_stage(name, spark, cfg, run)


def _table(spark, cfg, dataset, name):
    return spark.read.format("delta").load(cfg.lakehouse.table_path(dataset, name))


def test_near_pairs_in_spark_equal_brute_force(spark):
    """Buckets straddling Arrow batches (batches of 37 rows) and several tasks: the pairs found
    are exactly the brute-force pairs within the threshold."""
    from ptdm_spark.imaging import hashing
    from ptdm_spark.transforms.dedupe import near_pairs

    rng = np.random.default_rng(3)
    base = [int(x) for x in rng.integers(-(1 << 63), (1 << 63) - 1, 1500, dtype=np.int64)]
    planted = [_flip(h, rng.choice(64, int(rng.integers(1, 11)), replace=False)) for h in base[:400]]
    planted += [_flip(h, rng.choice(64, 10, replace=False)) for h in base[400:450]]  # exactly at the threshold
    hashes = sorted(set(base + planted))
    is_new = [i % 3 != 0 for i in range(len(hashes))]
    df = spark.createDataFrame(list(zip(hashes, is_new)), "phash long, is_new boolean")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "37")
    try:
        got = {(r.a, r.b, r.distance) for r in
               near_pairs(df, hashing.band_masks(10, 12), 10, 3, "r", all_new=False).collect()}
    finally:
        spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    expected = set()
    for (a, na), (b, nb) in itertools.combinations(zip(hashes, is_new), 2):
        d = hashing.hamming(a, b)
        if d <= 10 and (na or nb):
            expected.add((min(a, b), max(a, b), d))
    assert len(expected) >= 300
    assert got == expected


def test_components_of_chains_and_stars(spark, tmp_path):
    from ptdm_spark.transforms.dedupe import components, components_in_memory

    rng = np.random.default_rng(1)
    chain = [int(x) for x in rng.permutation(np.arange(100, 300))]  # a 200-node path in random id order
    edges = [(min(a, b), max(a, b)) for a, b in zip(chain, chain[1:])]
    edges += [(5, 9), (9, 7), (1000, 1001), (1000, 1002), (1000, 1003)]
    def checkpoint(df, i):
        df.write.parquet(str(tmp_path / str(i)))
        return spark.read.parquet(str(tmp_path / str(i)))

    df = spark.createDataFrame(edges, "a long, b long")
    expected = spark.createDataFrame(
        [(n, 100) for n in chain] + [(5, 5), (9, 5), (7, 5)] + [(n, 1000) for n in (1000, 1001, 1002, 1003)],
        "node long, comp long")
    assertDataFrameEqual(components(df, checkpoint), expected)
    assertDataFrameEqual(components_in_memory(df), expected)  # the driver's way, for graphs that fit there


def test_incremental_batch_bridges_two_old_components(spark, cfg):
    """A and C are 20 bits apart: no pair. B, 10 bits from each, arrives later: only B is
    searched, the two new pairs are stored, and A, B, C become one component."""
    ds = "near_bridge"
    a = 0x0F0F0F0F0F0F0F0F
    c = _flip(a, range(20))
    b = _flip(a, range(10))
    _add_images(spark, cfg, ds, [_image("a", a, side=64), _image("c", c, side=80)])
    first = _stage(spark, cfg, ds, "dedupe")
    assert (first["hashes_new"], first["pairs"], first.get("duplicates_phash", 0)) == (2, 0, 0)

    _add_images(spark, cfg, ds, [_image("b", b, side=48)])
    second = _stage(spark, cfg, ds, "dedupe")
    assert (second["hashes"], second["hashes_new"], second["pairs_new"], second["pairs"]) == (3, 1, 2, 2)
    dups = {(r.image_id, r.kept_id, r.method, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert dups == {("a", "c", "phash", 20), ("b", "c", "phash", 10)}  # c is the largest: kept
    pairs = _table(spark, cfg, ds, "phash_pairs").collect()
    assert {(r.a, r.b) for r in pairs} == {(min(a, b), max(a, b)), (min(b, c), max(b, c))}

    # Nothing new: nothing searched, same answer; the components in Spark this time, not on the driver.
    in_spark = dataclasses.replace(cfg, dedupe=dataclasses.replace(cfg.dedupe, driver_components_max_edges=0))
    third = _stage(spark, in_spark, ds, "dedupe")
    assert (third["hashes_new"], third.get("pairs_new", 0)) == (0, 0)
    assert {(r.image_id, r.kept_id, r.method, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()} == dups


def test_far_pairs_count_only_when_their_dhashes_agree(spark, cfg):
    """Between confirm_above (10) and max_distance (12) pHash bits, a pair is a near duplicate
    only if its dHashes are within dhash_max_distance (10) too."""
    p = cfg.dedupe.phash
    assert (p.confirm_above, p.max_distance, p.dhash_max_distance) == (10, 12, 10)
    ds = "near_confirm"
    h, g = 0x0F0F0F0F0F0F0F0F, 0x3C3C3C3C3C3C3C3C
    _add_images(spark, cfg, ds, [
        _image("x", h, side=80), _image("y", _flip(h, range(12)), dhash=_flip(0, range(10))),  # dHash agrees
        _image("u", g, side=80), _image("v", _flip(g, range(40, 52)), dhash=_flip(0, range(11))),  # 11 bits: no
        _image("s", ~h, side=80), _image("t", _flip(~h, range(30, 40)), dhash=-1),  # 10 pHash bits: no check
    ])
    counts = _stage(spark, cfg, ds, "dedupe")
    assert counts["pairs"] == 2  # 3 verified pHash pairs stored, 2 count
    dups = {(r.image_id, r.kept_id, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert dups == {("y", "x", 12), ("t", "s", 10)}


def _thumbs(rgb: np.ndarray) -> dict:
    """The colour and detail thumbnails of an RGB array, as ``_image`` keywords."""
    from ptdm_spark.imaging import quality

    return dict(thumb=quality.colour_thumb(rgb), detail=quality.detail_thumb(rgb))


def test_meaningless_hashes_are_matched_by_pixels_only(spark, cfg):
    """Images under min_side never pair with each other (only with larger images: none near here)
    and near_constant images stay out of the pHash search: flat pink and
    flat dark red share their pHash (every flat colour's) and would pass the tone-matched look
    check, but are not duplicates (without channel sums they match by identical pixels only)."""
    ds = "near_meaningless"
    h = 0x123456789ABCDEF
    flat = -(1 << 63)  # 0x8000000000000000: the pHash of every flat colour
    pink, dark_red = np.full((64, 64, 3), (250, 150, 150), np.uint8), np.full((64, 64, 3), (120, 10, 10), np.uint8)
    _add_images(spark, cfg, ds, [
        _image("flat1", flat, flags=["near_constant"], **_thumbs(pink)),
        _image("flat2", flat, flags=["near_constant"], **_thumbs(dark_red)),
        _image("tiny1", 0x0FEDCBA98765432, side=28), _image("tiny2", _flip(0x0FEDCBA98765432, [1]), side=28),
        _image("same1", 77, side=28, pixel="P"), _image("same2", 77, side=20, pixel="P"),
        _image("ok1", h), _image("ok2", _flip(h, [1, 2])),
    ])
    _stage(spark, cfg, ds, "dedupe")
    dups = {(r.image_id, r.kept_id, r.method) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert dups == {("same2", "same1", "pixel"), ("ok2", "ok1", "phash")}


def _flat(image_id: str, rgb, side: int = 256, **kw) -> dict:
    """A flat image of colour ``rgb`` (levels), as process stores it: flag near_constant, the
    pHash of every flat colour, its channel sums."""
    from ptdm_spark.imaging import summary

    px = np.full((side, side, 3), rgb, np.uint8)
    return _image(image_id, -(1 << 63), side=side, flags=["near_constant"], pixel=f"px-{tuple(rgb)}-{side}",
                  **_thumbs(px), **kw) | {"pixel_sums": summary.sums_list(summary.array_sums(px))}


def test_flat_images_of_nearly_one_colour_are_duplicates(spark, cfg):
    """A flat colour, its brightened (+30 levels), darkened and smaller copies, at any size, are
    one group kept by the largest (then smallest id); flat pink and dark red are not; groups are
    bounded by the kept image's colour (a grey 80 levels from the kept one is not pulled in by
    the grey between them); a flat row without channel sums (processed before they existed)
    matches by identical pixels only, and joins the group of a flat image with its pixels."""
    ds = "near_flat"
    base = (38, 31, 48)
    _add_images(spark, cfg, ds, [
        _flat("a_base", base), _flat("b_brighter", (68, 61, 78)), _flat("c_darker", (23, 18, 33)),
        _flat("d_half", base, side=128), _flat("e_tiny", base, side=20),
        _flat("pink", (250, 150, 150)), _flat("red", (120, 10, 10), side=64),
        _flat("grey1", (100, 100, 100)), _flat("grey2", (140, 140, 140), side=128),
        _flat("grey3", (180, 180, 180), side=64),
        _flat("old", base, side=300) | {"pixel_sums": None},
        _flat("z_twin", base) | {"pixel_sums": None},  # a_base's pixels, processed before sums existed
    ])
    _stage(spark, cfg, ds, "dedupe")
    dups = {(r.image_id, r.kept_id, r.method, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert dups == {("b_brighter", "a_base", "flat", 30), ("c_darker", "a_base", "flat", 15),
                    ("d_half", "a_base", "flat", 0), ("e_tiny", "a_base", "flat", 0),
                    ("grey2", "grey1", "flat", 40), ("z_twin", "a_base", "pixel", 0)}
    # Without the flat method, only identical pixels.
    off = dataclasses.replace(cfg, dedupe=dataclasses.replace(cfg.dedupe, methods=("pixel", "phash")))
    _stage(spark, off, ds, "dedupe")
    assert {(r.image_id, r.kept_id) for r in _table(spark, cfg, ds, "duplicates").collect()} == {("z_twin", "a_base")}


def _thumb(rgb_colour) -> bytes:
    """The colour thumbnail of a real drawing: a disc of ``rgb_colour`` on white."""
    from ptdm_spark.imaging import quality
    from ptdm_spark.imaging.cv import cv2

    img = np.full((96, 96, 3), 255, np.uint8)
    cv2.circle(img, (48, 48), 30, rgb_colour, -1)
    return quality.colour_thumb(img)


def test_pairs_are_checked_on_colour_and_groups_never_chain_past_the_bound(spark, cfg):
    """Near pHashes of differently coloured drawings are not duplicates; low-information images
    are matched like the others; a chain of pHashes 8 bits apart splits into groups whose kept
    image is within member_max_distance (20) of every member: the old transitive rule made one
    component of x0..x4 (32 bits end to end). The driver and the Spark way agree."""
    p = cfg.dedupe.phash
    assert (p.member_max_distance, p.confirm_above) == (20, 10)
    ds = "near_colour"
    h = 0x0F0F0F0F0F0F0F0F
    red, blue = _thumb((220, 30, 30)), _thumb((30, 30, 220))
    steps = [_flip(h, range(8 * i)) for i in range(5)]  # x_i is 8 i bits from x0, 8 bits from x_(i-1)
    g = 0x3C3C3C3C3C3C3C3C
    _add_images(spark, cfg, ds, [
        *[_image(f"x{i}", steps[i], side=100 - i, thumb=red) for i in range(5)],
        _image("red", g, side=90, thumb=red), _image("blue", _flip(g, [1, 2]), thumb=blue),
        _image("logo1", ~h, side=90, thumb=red, flags=["low_information"]),
        _image("logo2", _flip(~h, [3, 4, 5, 6]), thumb=red, flags=["low_information"]),
        # Detail thumbnails: a brightened copy of a drawing is tied to it, the drawing with a dark
        # badge over a corner is not (its 16x16 colour thumbnail alone would let it through).
        _image("folder", 0x5A5A5A5A5A5A5A5A, side=96, **_thumbs(folder_icon())),
        _image("brighter", _flip(0x5A5A5A5A5A5A5A5A, [7, 9]),
               **_thumbs(np.clip(folder_icon().astype(int) + 30, 0, 255).astype(np.uint8))),
        _image("badge", _flip(0x5A5A5A5A5A5A5A5A, [11, 13]), **_thumbs(folder_icon(emblem=True))),
    ])
    expected = {("x1", "x0", 8), ("x2", "x0", 16), ("x4", "x3", 8), ("logo2", "logo1", 4), ("brighter", "folder", 2)}
    _stage(spark, cfg, ds, "dedupe")
    got = {(r.image_id, r.kept_id, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert got == expected
    in_spark = dataclasses.replace(cfg, dedupe=dataclasses.replace(cfg.dedupe, driver_components_max_edges=0))
    _stage(spark, in_spark, ds, "dedupe")
    assert {(r.image_id, r.kept_id, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()} == expected


def _processed(image_id: str, rgb: np.ndarray) -> dict:
    """An images row with the hashes and thumbnails ``process`` computes for this RGB array."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging.pipeline import Params, process_image

    r = process_image(encode(rgb), Params.from_config(load_config().process))
    row = _image(image_id, r["phash"], dhash=r["dhash"], thumb=r["colour_thumb"], detail=r["detail_thumb"],
                 inner=r["phash_inner"], pixel=r["pixel_sha256"])
    return {**row, "width": r["width"], "height": r["height"]}


def test_cropped_copies_are_found_through_the_inner_phash(spark, cfg):
    """scikit-image's coffee photo and its copy cropped by 4 % a side: whole pHashes 14 bits apart
    (beyond the search radius), tied through the original's inner pHash; the duplicates row's
    distance is that of the closest pair of pHashes (computed here from the records). With the
    inner search off they are not tied."""
    import skimage.data

    from ptdm_spark.imaging import hashing

    ds = "near_crops"
    img = skimage.data.coffee()
    h, w = img.shape[:2]
    crop = img[round(h * .04):h - round(h * .04), round(w * .04):w - round(w * .04)]
    rows = [_processed("coffee", img), _processed("coffee_crop", crop), _processed("chelsea", skimage.data.chelsea())]
    whole = hashing.hamming(rows[0]["phash"], rows[1]["phash"])
    closest = min(hashing.hamming(x, y) for x in (rows[0]["phash"], rows[0]["phash_inner"])
                  for y in (rows[1]["phash"], rows[1]["phash_inner"]))
    assert whole > cfg.dedupe.phash.max_distance and closest <= cfg.dedupe.phash.inner_max_distance
    _add_images(spark, cfg, ds, rows)
    off = dataclasses.replace(cfg, dedupe=dataclasses.replace(
        cfg.dedupe, phash=dataclasses.replace(cfg.dedupe.phash, inner_search=False)))
    _stage(spark, off, ds, "dedupe")
    assert _table(spark, cfg, ds, "duplicates").count() == 0
    _stage(spark, cfg, ds, "dedupe")  # the whole hashes are searched already: the inner search must still run
    got = {(r.image_id, r.kept_id, r.method, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert got == {("coffee_crop", "coffee", "phash", closest)}


def test_small_copies_join_larger_images_but_never_each_other(spark, cfg):
    """A drawing's copies shrunk to 24 and 16 px (under min_side) have no detail thumbnail and no
    reliable pHash among themselves: they pair with the 128 px drawing (checked on colour), never
    with each other. Two small copies of a photo 2 pHash bits apart stay apart while nothing larger
    is there, and both join the photo's 128 px copy when it comes. Incremental both ways: small
    images searched before the large ones arrive, and a small copy arriving after them."""
    import skimage.data

    from ptdm_spark.imaging import hashing
    from ptdm_spark.imaging.cv import cv2

    def shrink(img, side):
        return cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)

    def closest(big, small):  # a small image's inner pHash is its whole one
        return min(hashing.hamming(big["phash"], small["phash"]), hashing.hamming(big["phash_inner"], small["phash"]))

    ds = "near_small"
    folder, astro = folder_icon(), skimage.data.astronaut()
    s24, s16, a24, a20 = (_processed("s24", shrink(folder, 24)), _processed("s16", shrink(folder, 16)),
                          _processed("a24", shrink(astro, 24)), _processed("a20", shrink(astro, 20)))
    assert hashing.hamming(a24["phash"], a20["phash"]) <= cfg.dedupe.phash.confirm_above
    _add_images(spark, cfg, ds, [s24, s16, a24, a20])
    _stage(spark, cfg, ds, "dedupe")
    assert _table(spark, cfg, ds, "duplicates").count() == 0

    big = _processed("big", folder)
    _add_images(spark, cfg, ds, [big])
    _stage(spark, cfg, ds, "dedupe")
    got = {(r.image_id, r.kept_id, r.method, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert got == {("s24", "big", "phash", closest(big, s24)), ("s16", "big", "phash", closest(big, s16))}

    s20, a128 = _processed("s20", shrink(folder, 20)), _processed("a128", shrink(astro, 128))
    _add_images(spark, cfg, ds, [s20, a128])
    _stage(spark, cfg, ds, "dedupe")
    got = {(r.image_id, r.kept_id) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert got == {("s24", "big"), ("s16", "big"), ("s20", "big"), ("a24", "a128"), ("a20", "a128")}

    off = dataclasses.replace(cfg, dedupe=dataclasses.replace(
        cfg.dedupe, phash=dataclasses.replace(cfg.dedupe.phash, small_min_side=cfg.dedupe.phash.min_side)))
    _stage(spark, off, ds, "dedupe")
    assert _table(spark, cfg, ds, "duplicates").count() == 0


def test_small_images_are_searched_against_inner_values_that_come_later(spark, cfg):
    """Run 1 (inner search on): X (64 px) with whole pHash h and inner pHash i far from it.
    Run 2 (inner search off): S and T, 20 px, one bit from i and sharing a pHash: X's inner value
    is not in the search, so nothing pairs (and S and T, both small, never pair with each other).
    Run 3 (inner search on again): i has not been a target of the small images' search yet, so
    S and T are searched against it and join X, although i, S's and T's values were each searched
    before in some search."""
    ds = "near_small_inner"
    h, i = 0x123456789ABCDEF, 0x7EDCBA9876543210
    _add_images(spark, cfg, ds, [_image("x", h, inner=i)])
    _stage(spark, cfg, ds, "dedupe")
    _add_images(spark, cfg, ds, [_image("s", _flip(i, [3]), side=20), _image("t", _flip(i, [3]), side=20)])
    off = dataclasses.replace(cfg, dedupe=dataclasses.replace(
        cfg.dedupe, phash=dataclasses.replace(cfg.dedupe.phash, inner_search=False)))
    _stage(spark, off, ds, "dedupe")
    assert _table(spark, cfg, ds, "duplicates").count() == 0
    _stage(spark, cfg, ds, "dedupe")
    got = {(r.image_id, r.kept_id, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert got == {("s", "x", 1), ("t", "x", 1)}


def test_a_new_inner_phash_is_searched_although_its_whole_phash_was(spark, cfg):
    """The inner search keeps its own record per value: a new, larger copy of an image has the
    same whole pHash as the old one (already searched) but another inner pHash, which is 1 bit
    from an old crop's whole pHash: the second run ties the crop to the new copy."""
    ds = "near_inner_incremental"
    whole = 0x0F0F0F0F0F0F0F0F
    inner_old = _flip(0x3C3C3C3C3C3C3C3C, [0])
    inner_new = _flip(inner_old, range(1, 7))  # 6 bits from the old inner value: beyond 4
    crop = _flip(inner_new, [40])  # 1 bit from the new inner value, 7 from the old one
    _add_images(spark, cfg, ds, [_image("small", whole, side=64, inner=inner_old),
                                 _image("crop", crop, side=60, inner=_flip(crop, [50, 51]))])
    _stage(spark, cfg, ds, "dedupe")
    assert _table(spark, cfg, ds, "duplicates").count() == 0
    _add_images(spark, cfg, ds, [_image("large", whole, side=128, inner=inner_new)])
    _stage(spark, cfg, ds, "dedupe")
    got = {(r.image_id, r.kept_id, r.distance) for r in _table(spark, cfg, ds, "duplicates").collect()}
    assert got == {("small", "large", 0), ("crop", "large", 1)}


def test_transparency_parts_icons_alike_on_white_and_keeps_resized_copies(ptdm, spark, tmp_path):
    """RGBA PNGs: a drawing on transparent ground, the same with an opaque light-grey bar under
    it, and the drawing saved 1.5x larger. On white the bar barely shows: the pair passes the
    hash, colour and detail checks (checked here on process's own records); their alpha shapes
    differ. ptdm run ties the drawing to its larger copy and leaves the one with the bar alone."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import hashing
    from ptdm_spark.imaging.cv import cv2
    from ptdm_spark.imaging.pipeline import Params, process_image

    src = tmp_path / "icons"
    src.mkdir()
    img = rgba_drawing()
    files = {"drawing.png": img, "barred.png": rgba_drawing(bar=True),
             "large.png": cv2.resize(img, (192, 192), interpolation=cv2.INTER_LINEAR)}
    for name, x in files.items():
        (src / name).write_bytes(cv2.imencode(".png", x)[1].tobytes())
    p = load_config().dedupe.phash
    r0, r1 = (process_image((src / n).read_bytes(), Params.from_config(load_config().process))
              for n in ("drawing.png", "barred.png"))
    assert hashing.hamming(r0["phash"], r1["phash"]) <= p.confirm_above
    assert hashing.pairs_alike([r0["colour_thumb"]], [r1["colour_thumb"]], [r0["detail_thumb"]], [r1["detail_thumb"]],
                               p.colour_max_distance, p.detail_max_distance).all()
    status, out = ptdm("run", str(src), "--dataset", "alpha_icons")
    assert status == 0, out
    rows = spark.sql("""SELECT i.source_uri AS dup, k.source_uri AS kept, d.method
                        FROM alpha_icons.duplicates d JOIN alpha_icons.images i USING (image_id)
                        JOIN alpha_icons.images k ON k.image_id = d.kept_id""").collect()
    assert sorted((r.dup.rsplit("/", 1)[1], r.kept.rsplit("/", 1)[1], r.method) for r in rows) == [
        ("drawing.png", "large.png", "phash")]
    assert spark.sql("SELECT count(*) AS n FROM alpha_icons.images WHERE alpha_thumb IS NOT NULL").first().n == 3


def test_label_conflicts_list_components_with_several_labels(spark, cfg):
    ds = "near_labels"
    h = 0x55AA55AA55AA55AA
    _add_images(spark, cfg, ds, [
        _image("cat1", h, label="cat", side=100), _image("dog1", _flip(h, [3, 4]), label="dog"),
        _image("cat2", _flip(h, [5]), label="cat"),
        _image("cat3", ~h, label="cat"), _image("cat4", _flip(~h, [0]), label="cat"),  # agreeing labels
    ])
    counts = _stage(spark, cfg, ds, "dedupe")
    rows = _table(spark, cfg, ds, "label_conflicts").collect()
    assert [(r.kept_id, r.members, r.labels, r.image_ids) for r in rows] == [
        ("cat1", 3, ["cat", "dog"], ["cat1", "cat2", "dog1"])]
    assert counts["label_conflicts"] == 1


def _spread(n: int, seed: int) -> list[int]:
    """n hashes far apart from each other (random 64-bit values: collisions within 10 bits are
    astronomically unlikely)."""
    return [int(x) for x in np.random.default_rng(seed).integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64)]


def _split_counts(spark, cfg, ds):
    rows = _table(spark, cfg, ds, "curated").groupBy("label", "split").count().collect()
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r.label, {})[r.split] = r["count"]
    return out


def test_splits_are_stratified_stable_and_shared_by_near_duplicates(spark, cfg):
    ds = "near_splits"
    ratios = {"train": 0.8, "val": 0.1, "test": 0.1}
    sizes = {"cat": 200, "dog": 90, "owl": 13}
    hashes = iter(_spread(1000, 11))
    first = [_image(f"{lab}{i:03d}", next(hashes), label=lab) for lab, n in sizes.items() for i in range(n)]
    _add_images(spark, cfg, ds, first)
    _stage(spark, cfg, ds, "dedupe")
    _stage(spark, cfg, ds, "curate")
    counts = _split_counts(spark, cfg, ds)
    for lab, n in sizes.items():  # within one image of the ratio, per label and split
        for split, r in ratios.items():
            assert abs(counts[lab].get(split, 0) - r * n) < 1, (lab, split, counts[lab])
    before = {r.image_id: r.split for r in _table(spark, cfg, ds, "splits").collect()}

    # a second batch: 150 new cats, and a bigger near copy of one test image (it becomes the kept one)
    test_cat = next(i for i, s in sorted(before.items()) if s == "test" and i.startswith("cat"))
    test_hash = next(r["phash"] for r in first if r["image_id"] == test_cat)
    second = [_image(f"cat{i:03d}", next(hashes), label="cat") for i in range(200, 350)]
    second.append(_image("copy-of-test", _flip(test_hash, [0, 1, 2]), label="cat", side=200))
    _add_images(spark, cfg, ds, second)
    _stage(spark, cfg, ds, "dedupe")
    _stage(spark, cfg, ds, "curate")

    after = {r.image_id: (r.split, r.origin) for r in _table(spark, cfg, ds, "splits").collect()}
    assert {i: after[i][0] for i in before} == before  # nobody moved
    assert after["copy-of-test"] == ("test", "component")
    curated = {r.image_id: r.split for r in _table(spark, cfg, ds, "curated").collect()}
    assert curated["copy-of-test"] == "test" and test_cat not in curated
    cats = _split_counts(spark, cfg, ds)["cat"]
    for split, r in ratios.items():
        assert abs(cats.get(split, 0) - r * 350) <= 1.5, cats
    assert _table(spark, cfg, ds, "leakage").count() == 0


def test_source_splits_kept_and_leaks_reported(spark, cfg):
    ds = "near_leaks"
    keep = dataclasses.replace(cfg, curate=dataclasses.replace(cfg.curate, source_splits="keep"))
    h = _spread(6, 5)
    _add_images(spark, keep, ds, [
        _image("tr1", h[0], label="a", source_split="train", side=100),
        _image("te1", _flip(h[0], [7, 9]), label="a", source_split="test"),  # leaks: near copy of tr1
        _image("te2", h[1], label="a", source_split="test"),
        _image("tr2", h[2], label="b", source_split="train"),
        _image("free", h[3], label="b"),  # no declared split: assigned
    ])
    _stage(spark, keep, ds, "dedupe")
    counts = _stage(spark, keep, ds, "curate")
    splits = {r.image_id: (r.split, r.origin) for r in _table(spark, keep, ds, "splits").collect()}
    assert splits["te1"] == ("test", "source") and splits["tr1"] == ("train", "source")
    assert splits["free"][1] == "assigned"
    leaks = [(r.image_id, r.split, r.kept_id, r.train_ids) for r in _table(spark, keep, ds, "leakage").collect()]
    assert leaks == [("te1", "test", "tr1", ["tr1"])]
    assert counts["leaking"] == 1
    q = spark.sql(f"SELECT l.image_id, hamming(i.phash, t.phash) AS d FROM {ds}.leakage l "
                  f"JOIN {ds}.images i USING (image_id) JOIN {ds}.images t ON t.image_id = l.train_ids[0]").collect()
    assert [(r.image_id, r.d) for r in q] == [("te1", 2)]


def _variants(seed: int) -> dict[str, bytes]:
    from ptdm_spark.imaging.cv import cv2

    img = photo(seed, 96, 128)
    big = cv2.resize(img, (256, 192), interpolation=cv2.INTER_CUBIC)
    bright = np.clip(img.astype(np.int16) + 25, 0, 255).astype(np.uint8)
    return {"orig.png": encode(img), "big.png": encode(big), "bright.jpg": encode(bright, ".jpg")}


def test_run_marks_planted_near_duplicates(ptdm, spark, tmp_path):
    """A folder with 8 unrelated photos, one of them also enlarged and brightened (JPEG, and
    filed under another label): ptdm run keeps the enlarged copy and marks the other two."""
    src = tmp_path / "src"
    for seed in range(8):
        d = src / ("cats" if seed % 2 else "dogs")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"p{seed}.png").write_bytes(encode(photo(seed + 100, 96, 128)))
    v = _variants(7)
    (src / "cats" / "orig.png").write_bytes(v["orig.png"])
    (src / "cats" / "big.png").write_bytes(v["big.png"])
    (src / "dogs" / "bright.jpg").write_bytes(v["bright.jpg"])
    status, out = ptdm("run", str(src), "--dataset", "planted")
    assert status == 0, out
    assert "accounting adds up" in out
    rows = spark.sql("""SELECT i.source_uri AS dup, k.source_uri AS kept, d.method, d.distance
                        FROM planted.duplicates d JOIN planted.images i USING (image_id)
                        JOIN planted.images k ON k.image_id = d.kept_id""").collect()
    got = sorted((r.dup.rsplit("/", 1)[1], r.kept.rsplit("/", 1)[1], r.method) for r in rows)
    assert got == [("bright.jpg", "big.png", "phash"), ("orig.png", "big.png", "phash")]
    assert all(0 <= r.distance <= 10 for r in rows)
    assert "1 with conflicting labels" in out
    assert spark.sql("SELECT count(*) AS n FROM planted.curated").first().n == 9
