"""Banding of 64-bit hashes: every pair within the threshold is found, and nothing else."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ptdm_spark.imaging import hashing
from tests.imagefiles import folder_icon, rgba_drawing

pytestmark = pytest.mark.unit


def _signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def _banded_search(hashes: list[int], is_new: list[bool], k: int, blocks: int) -> set[tuple[int, int, int]]:
    """What the Spark job does, in plain Python: bucket by each band key, verify in the bucket."""
    found = set()
    h = np.array(hashes, dtype=np.int64)
    new = np.array(is_new)
    for mask in hashing.band_masks(k, blocks):
        keys = h & np.int64(mask)
        for key in np.unique(keys):
            sel = keys == key
            if sel.sum() > 1 and new[sel].any():
                for a, b, d in hashing.bucket_pairs(h[sel], new[sel], k):
                    found.update(zip(a.tolist(), b.tolist(), d.tolist()))
    return found


def _brute_force(hashes: list[int], is_new: list[bool], k: int) -> set[tuple[int, int, int]]:
    out = set()
    for (a, na), (b, nb) in itertools.combinations(zip(hashes, is_new), 2):
        d = hashing.hamming(a, b)
        if d <= k and (na or nb):
            out.add((min(a, b), max(a, b), d))
    return out


def test_blocks_cover_the_64_bits_once():
    for blocks in (1, 5, 11, 12, 13, 64):
        masks = hashing.block_masks(blocks)
        assert len(masks) == blocks
        assert sum(masks) == (1 << 64) - 1  # disjoint and complete: the sum is the OR
        sizes = [bin(m).count("1") for m in masks]
        assert max(sizes) - min(sizes) <= 1


def test_band_keys_are_the_combinations_of_blocks():
    assert len(hashing.band_masks(10, 11)) == 11  # classic banding: one block per key
    assert len(hashing.band_masks(10, 12)) == 66  # C(12, 2)
    assert all(-(1 << 63) <= m < (1 << 63) for m in hashing.band_masks(3, 6))
    with pytest.raises(ValueError):
        hashing.band_masks(10, 10)


@pytest.mark.parametrize("k,blocks", [(10, 11), (10, 12), (4, 5), (4, 7), (0, 1)])
def test_a_pair_at_exactly_the_threshold_is_always_found(k, blocks):
    """The worst case for banding: the k differing bits spread over k different blocks, so the
    pair agrees on only blocks - k of them. Every such pair must still meet in a bucket."""
    rng = np.random.default_rng(k * 100 + blocks)
    masks = hashing.block_masks(blocks)
    for _ in range(200):
        a = int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))
        flipped = rng.choice(blocks, size=k, replace=False)
        b = a
        for blk in flipped:
            bits = [i for i in range(64) if masks[blk] >> i & 1]
            b ^= 1 << int(rng.choice(bits))
        a, b = _signed(a), _signed(b)
        assert hashing.hamming(a, b) == k
        got = _banded_search([a, b], [True, False], k, blocks)
        assert got == {(min(a, b), max(a, b), k)}
        # one more bit and the pair is beyond the threshold: not reported
        c = _signed((b & 0xFFFFFFFFFFFFFFFF) ^ (1 << int(rng.choice([i for i in range(64) if (a ^ b) >> i & 1 == 0]))))
        assert hashing.hamming(a, c) == k + 1
        assert _banded_search([a, c], [True, True], k, blocks) == set()


def test_banded_search_equals_brute_force_with_planted_near_pairs():
    rng = np.random.default_rng(7)
    base = [_signed(int(x)) for x in rng.integers(0, 1 << 63, 300, dtype=np.int64) * 2]
    hashes = list(base)
    for h in base[:100]:  # near copies at every distance 0..12
        d = int(rng.integers(1, 13))
        bits = rng.choice(64, size=d, replace=False)
        v = h & 0xFFFFFFFFFFFFFFFF
        for bit in bits:
            v ^= 1 << int(bit)
        hashes.append(_signed(v))
    hashes = sorted(set(hashes))
    is_new = [bool(x) for x in rng.integers(0, 2, len(hashes))]
    expected = _brute_force(hashes, is_new, 8)
    assert len(expected) > 50
    assert _banded_search(hashes, is_new, 8, 10) == expected


def test_old_pairs_are_not_compared_again():
    a, b = 0, 3  # distance 2
    assert _banded_search([a, b], [False, False], 4, 5) == set()
    assert _banded_search([a, b], [False, True], 4, 5) == {(0, 3, 2)}


def test_cost_model_prefers_longer_keys_at_a_million():
    classic = hashing.expected_comparisons(1_000_000, 10, 11)
    wider = hashing.expected_comparisons(1_000_000, 10, 12)
    assert wider < classic / 3


def _reference_colour_distance(x: bytes, y: bytes) -> float:
    """colour_distance written out cell by cell, for one pair (the independent reference)."""
    s, w = 16, 4.0

    def centred(t):
        t = np.frombuffer(t, np.uint8).reshape(s, s, 3).astype(np.float64)
        out = np.empty_like(t)
        out[..., 0] = t[..., 0] - t[..., 0].mean()
        out[..., 1:] = (t[..., 1:] - 128) * w
        return out

    def one_way(p, q):
        best = -1.0
        inner = p[1:s - 1, 1:s - 1].ravel()
        for dy in range(3):
            for dx in range(3):
                win = q[dy:dy + s - 2, dx:dx + s - 2].ravel()
                cos = float(inner @ win) / ((np.linalg.norm(inner) + 1) * (np.linalg.norm(win) + 1))
                best = max(best, cos)
        return 1 - best

    p, q = centred(x), centred(y)
    return max(one_way(p, q), one_way(q, p))


def test_colour_distance_equals_the_cell_by_cell_reference():
    rng = np.random.default_rng(4)
    a = [rng.integers(0, 256, 768, dtype=np.uint8).tobytes() for _ in range(20)]
    b = [rng.integers(0, 256, 768, dtype=np.uint8).tobytes() for _ in range(20)]
    got = hashing.colour_distance(a, b)
    want = [_reference_colour_distance(x, y) for x, y in zip(a, b)]
    assert np.allclose(got, want, atol=1e-4)


def test_colour_distance_keeps_copies_and_parts_recoloured_shapes():
    """A real shape drawn in red: its brighter, JPEG and 4 %-cropped copies stay within the
    configured colour_max_distance; the same shape in blue or in green does not (all share the
    red drawing's luminance layout closely enough for pHash)."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import quality
    from ptdm_spark.imaging.cv import cv2

    limit = load_config().dedupe.phash.colour_max_distance
    img = np.full((128, 128, 3), 255, np.uint8)
    cv2.circle(img, (64, 64), 40, (220, 30, 30), -1)  # RGB
    cv2.rectangle(img, (20, 90), (108, 110), (120, 60, 20), -1)
    thumb = quality.colour_thumb
    copies = [np.clip(img.astype(np.int16) + 30, 0, 255).astype(np.uint8),
              cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR),
              img[5:123, 5:123]]
    blue = img[..., ::-1].copy()
    green = img[..., [1, 0, 2]].copy()
    d = hashing.colour_distance([thumb(img)] * 5, [thumb(c) for c in copies] + [thumb(blue), thumb(green)])
    assert (d[:3] <= limit).all(), d
    assert (d[3:] > limit).all(), d


# --- the detail thumbnail: crops, brightening, emblems ---------------------------------------------

def _copies(img: np.ndarray) -> dict[str, np.ndarray]:
    """The near-duplicate benchmark's transformations, done here with OpenCV (RGB in, RGB out)."""
    from ptdm_spark.imaging.cv import cv2

    h, w = img.shape[:2]
    jpeg = cv2.imdecode(cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_COLOR)
    gamma = np.array([(i / 255.0) ** 1.25 * 255 for i in range(256)]).astype(np.uint8)
    return {"jpeg30": jpeg[..., ::-1], "half": cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
            "brighter": np.clip(img.astype(np.int16) + 30, 0, 255).astype(np.uint8), "gamma1.25": gamma[img],
            "blur": cv2.GaussianBlur(img, (0, 0), 1.5),
            "crop2%": img[round(h * .02):h - round(h * .02), round(w * .02):w - round(w * .02)],
            "crop4%": img[round(h * .04):h - round(h * .04), round(w * .04):w - round(w * .04)]}


def test_transformed_copies_look_alike_and_emblems_or_recolourings_do_not():
    """Real photos (scikit-image's samples) and a drawing: every transformed copy is within the
    configured colour and detail limits of its original, also the Hubble deep field's 4 % crop,
    whose plain 16x16 colour distance (the rule before detail thumbnails) is past the limit; the
    drawing with a dark badge over a corner, or its body brown instead of yellow, is past the
    detail limit although its colour distance is not."""
    import skimage.data

    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import quality

    p = load_config().dedupe.phash
    for name, img in (("astronaut", skimage.data.astronaut()), ("coffee", skimage.data.coffee()),
                      ("hubble", skimage.data.hubble_deep_field()), ("drawing", folder_icon())):
        copies = _copies(img)
        colour, detail = hashing.look_distances([quality.detail_thumb(img)] * len(copies),
                                                [quality.detail_thumb(c) for c in copies.values()])
        assert (colour <= p.colour_max_distance).all(), (name, dict(zip(copies, colour)))
        assert (detail <= p.detail_max_distance).all(), (name, dict(zip(copies, detail)))
    hubble = skimage.data.hubble_deep_field()
    crop = _copies(hubble)["crop4%"]
    assert hashing.colour_distance([quality.colour_thumb(hubble)], [quality.colour_thumb(crop)])[0] > p.colour_max_distance
    plain = quality.detail_thumb(folder_icon())
    others = [quality.detail_thumb(folder_icon(emblem=True)), quality.detail_thumb(folder_icon(fill=(150, 100, 40)))]
    colour, detail = hashing.look_distances([plain] * 2, others)
    assert (colour <= p.colour_max_distance).all(), colour  # what the colour check alone let through
    assert (detail > p.detail_max_distance).all(), detail


def test_look_distances_are_symmetric_and_zero_for_the_same_image():
    import skimage.data

    from ptdm_spark.imaging import quality

    imgs = [skimage.data.astronaut(), skimage.data.coffee(), folder_icon(), folder_icon(emblem=True),
            _copies(folder_icon())["crop4%"]]
    t = [quality.detail_thumb(i) for i in imgs]
    a, b = zip(*[(x, y) for x in t for y in t])
    colour, detail = hashing.look_distances(list(a), list(b))
    colour, detail = colour.reshape(5, 5), detail.reshape(5, 5)
    assert np.allclose(np.diag(detail), 0, atol=1e-3) and np.allclose(np.diag(colour), 0, atol=2e-3)
    assert np.allclose(detail, detail.T) and np.allclose(colour, colour.T)


def test_zoom_resamples_like_a_real_crop():
    """The centre of a 32x32 thumbnail zoomed by 4 % a side is close to the thumbnail OpenCV
    makes of the image actually cropped by 4 % a side; much closer than the plain thumbnail."""
    import skimage.data

    from ptdm_spark.imaging import quality

    img = skimage.data.coffee()
    h, w = img.shape[:2]
    crop = img[round(h * .04):h - round(h * .04), round(w * .04):w - round(w * .04)]
    full = hashing._detail_rows([quality.detail_thumb(img)])
    want = hashing._detail_rows([quality.detail_thumb(crop)])
    assert np.abs(hashing._zoom(full, 0.04) - want).mean() < 0.4 * np.abs(full - want).mean()
    assert np.array_equal(hashing._zoom(full, 0.0), full)


def test_worst_window_equals_the_loop():
    rng = np.random.default_rng(5)
    d = rng.random((3, 26, 26)).astype(np.float32)
    want = [max(d[k, y:y + 6, x:x + 6].mean() for y in range(21) for x in range(21)) for k in range(3)]
    assert np.allclose(hashing._worst_window(d, 6), want, atol=1e-5)


def test_pairs_alike_checks_what_both_images_have():
    """Detail thumbnails on both sides: colour and detail; a side without one (a row processed
    before they existed): the 16x16 colour thumbnail alone; neither: not checked."""
    from ptdm_spark.imaging import quality

    plain, badge = folder_icon(), folder_icon(emblem=True)
    d0, d1 = quality.detail_thumb(plain), quality.detail_thumb(badge)
    c0, c1 = quality.colour_thumb(plain), quality.colour_thumb(badge)
    ok = hashing.pairs_alike([c0, c0, c0, None], [c1, c1, c1, None], [d0, None, d0, None], [d1, d1, d0, None],
                             0.2, 40.0)
    assert ok.tolist() == [False, True, True, True]


def test_the_inner_phash_finds_a_crop_the_whole_phash_misses():
    """scikit-image's coffee photo cropped by 4 % a side: its whole pHash is 14 bits from the
    original's (beyond the 12-bit search radius), but within 2 bits of the original's inner pHash,
    inside the inner search's 4 bits."""
    import skimage.data

    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import quality

    p = load_config().dedupe.phash
    img = skimage.data.coffee()
    h, w = img.shape[:2]
    crop = img[round(h * .04):h - round(h * .04), round(w * .04):w - round(w * .04)]
    _, g = quality.working_grey(img)
    _, gc = quality.working_grey(crop)
    assert hashing.hamming(quality.phash(g), quality.phash(gc)) > p.max_distance
    assert hashing.hamming(quality.phash_inner(g), quality.phash(gc)) <= p.inner_max_distance


def test_cross_pairs_in_bands_equal_brute_force_across_the_two_sides():
    """Small images' values against the others' only: the banded cross search finds exactly the
    small/other pairs within k of which one side is new (a value may sit on both sides; it never
    pairs with itself)."""
    rng = np.random.default_rng(11)
    base = [int(x) for x in rng.integers(-(1 << 63), (1 << 63) - 1, 12, dtype=np.int64)]
    hashes = []
    for b in base:  # clusters of near values, so that many pairs are within k
        for _ in range(6):
            v = b & 0xFFFFFFFFFFFFFFFF
            for bit in rng.choice(64, int(rng.integers(0, 9)), replace=False):
                v ^= 1 << int(bit)
            hashes.append(_signed(v))
    small = [bool(x) for x in rng.random(len(hashes)) < 0.4]
    new = [bool(x) for x in rng.random(len(hashes)) < 0.5]
    rows = list(zip(hashes, new, small)) + [(hashes[0], True, not small[0])]  # one value on both sides
    k, blocks = 8, 10
    want = set()
    for (a, na, sa), (b, nb, sb) in itertools.product(rows, rows):
        d = hashing.hamming(a, b)
        if sa and not sb and a != b and d <= k and (na or nb):
            want.add((min(a, b), max(a, b), d))
    h = np.array([r[0] for r in rows], np.int64)
    n, s = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    got = set()
    for mask in hashing.band_masks(k, blocks):
        keys = h & np.int64(mask)
        for key in np.unique(keys):
            sel = keys == key
            if n[sel].any():
                for a, b, d in hashing.bucket_cross_pairs(h[sel], n[sel], s[sel], k):
                    got.update(zip(a.tolist(), b.tolist(), d.tolist()))
    assert want and got == want


# --- the alpha thumbnail: the shape of the transparency -------------------------------------------

def test_alpha_thumb_is_the_area_mean_and_the_silhouette_of_the_alpha_channel():
    """A 64 px image's 32x32 maps are its 2x2 blocks' mean of alpha / 255 and share of pixels
    with alpha >= 128, times 255 rounded (computed here in float64 with numpy, not OpenCV: each
    stored value is a nearest integer, either one at a tie of .5); 16-bit alpha (x 257) gives the
    same; grey + alpha too. No map without alpha or with alpha >= 250 everywhere."""
    from ptdm_spark.imaging import normalize, quality

    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    cover = alpha.astype(np.float64).reshape(32, 2, 32, 2).mean(axis=(1, 3)) / 255.0
    solid = (alpha >= 128).reshape(32, 2, 32, 2).mean(axis=(1, 3))
    exact = np.stack([cover, solid]) * 255.0
    bgra = np.dstack([rng.integers(0, 256, (64, 64, 3)).astype(np.uint8), alpha])
    want = quality.alpha_thumb(normalize.alpha8(bgra))
    assert len(want) == 2048
    got = np.frombuffer(want, np.uint8).reshape(2, 32, 32)
    assert np.abs(got - exact).max() <= 0.5 + 1e-9
    assert quality.alpha_thumb(normalize.alpha8(bgra.astype(np.uint16) * 257)) == want
    assert quality.alpha_thumb(normalize.alpha8(np.dstack([bgra[..., 0], alpha]))) == want
    opaque = bgra.copy()
    opaque[..., 3] = np.maximum(alpha, 250)
    assert quality.alpha_thumb(normalize.alpha8(opaque)) is None
    assert quality.alpha_thumb(normalize.alpha8(bgra[..., :3])) is None
    assert quality.alpha_thumb(normalize.alpha8(bgra[..., 0])) is None


def test_alpha_distance_keeps_copies_and_parts_a_new_shape():
    """The drawing against its copies resized x0.5 and x1.5, blurred, cropped by 4 % a side and
    shrunk to 24 px: within alpha_max; against itself with a bar under it: beyond, though on white
    the two pass the colour and detail checks. Zero for the same maps, symmetric."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import normalize, quality
    from ptdm_spark.imaging.cv import cv2

    p = load_config().dedupe.phash
    img = rgba_drawing()
    copies = {"half": cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA),
              "x1.5": cv2.resize(img, (192, 192), interpolation=cv2.INTER_LINEAR),
              "blur": cv2.GaussianBlur(img, (0, 0), 1.5), "crop4%": img[5:123, 5:123],
              "24px": cv2.resize(img, (24, 24), interpolation=cv2.INTER_AREA)}

    def thumb(x):
        return quality.alpha_thumb(normalize.alpha8(x))

    d = hashing.alpha_distance([thumb(img)] * len(copies), [thumb(c) for c in copies.values()])
    assert (d <= p.alpha_max).all(), dict(zip(copies, d))
    bar = rgba_drawing(bar=True)
    d = hashing.alpha_distance([thumb(img), thumb(bar), thumb(img)], [thumb(bar), thumb(img), thumb(img)])
    assert d[0] > p.alpha_max and d[0] == pytest.approx(d[1]) and d[2] == 0, d
    white = [normalize.to_rgb8(x, (255, 255, 255)) for x in (img, bar)]
    colour, detail = hashing.look_distances([quality.detail_thumb(white[0])], [quality.detail_thumb(white[1])])
    assert colour[0] <= p.colour_max_distance and detail[0] <= p.detail_max_distance, (colour, detail)


def test_pairs_alike_checks_alpha_only_where_both_have_it():
    """The drawing and the one with a bar, on white: alike on colour and detail. With both alpha
    maps not alike (also on the colour thumbnail alone: images under 32 px); with a map on one
    side only, or alpha_max 1, as without maps."""
    from ptdm_spark.imaging import normalize, quality

    img, bar = rgba_drawing(), rgba_drawing(bar=True)
    white = [normalize.to_rgb8(x, (255, 255, 255)) for x in (img, bar)]
    c0, c1 = (quality.colour_thumb(x) for x in white)
    d0, d1 = (quality.detail_thumb(x) for x in white)
    a0, a1 = (quality.alpha_thumb(normalize.alpha8(x)) for x in (img, bar))
    rows = ([c0] * 4, [c1] * 4, [d0, d0, None, d0], [d1, d1, None, d1])
    assert hashing.pairs_alike(*rows, 0.2, 42.0).tolist() == [True] * 4
    got = hashing.pairs_alike(*rows, 0.2, 42.0, [a0, a0, a0, None], [a1, None, a1, a1], 0.23)
    assert got.tolist() == [False, True, False, True]
    assert hashing.pairs_alike(*rows, 0.2, 42.0, [a0] * 4, [a1] * 4, 1.0).tolist() == [True] * 4


def test_process_stores_the_alpha_thumb_of_the_decoded_pixels():
    """process_image on PNG bytes: an RGBA drawing's record holds the maps of its own alpha
    channel (the same from a 16-bit PNG of it), the RGB image composited from it none."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import normalize, quality
    from ptdm_spark.imaging.cv import cv2
    from ptdm_spark.imaging.pipeline import Params, process_image

    params = Params.from_config(load_config().process)
    img = rgba_drawing(bar=True)
    png = cv2.imencode(".png", img)[1].tobytes()
    png16 = cv2.imencode(".png", img.astype(np.uint16) * 257)[1].tobytes()
    flat = cv2.imencode(".png", normalize.to_rgb8(img, (255, 255, 255))[:, :, ::-1])[1].tobytes()
    want = quality.alpha_thumb(img[:, :, 3])
    assert want is not None
    assert process_image(png, params)["alpha_thumb"] == want
    assert process_image(png16, params)["alpha_thumb"] == want
    assert process_image(flat, params)["alpha_thumb"] is None


def test_grey_alpha_and_palette_transparency_pngs_get_the_maps_of_their_alpha():
    """What real files hold: a grey + alpha PNG (Pillow's LA) and a palette PNG whose tRNS chunk
    makes one index transparent. The decoder hands both back with an alpha channel, and the
    record's maps are those of the alpha the test drew."""
    import io

    from PIL import Image

    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import quality
    from ptdm_spark.imaging.pipeline import Params, process_image

    params = Params.from_config(load_config().process)
    alpha = np.zeros((48, 48), np.uint8)
    alpha[8:40, 10:38] = 255
    alpha[42:46, 4:44] = 255  # a bar under the body
    grey = np.full((48, 48), 90, np.uint8)
    la = io.BytesIO()
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(la, "PNG")
    pal = Image.fromarray(np.where(alpha > 0, 1, 0).astype(np.uint8), "P")
    pal.putpalette([255, 255, 255, 200, 40, 40] + [0, 0, 0] * 254)
    palette = io.BytesIO()
    pal.save(palette, "PNG", transparency=0)
    want = quality.alpha_thumb(alpha)
    assert want is not None
    for name, data in (("LA", la.getvalue()), ("P + tRNS", palette.getvalue())):
        got = process_image(data, params)
        assert got["reason"] is None, (name, got["detail"])
        assert got["alpha_thumb"] == want, name


def test_the_thumbnail_sides_are_the_ones_process_writes():
    """hashing reads the thumbnails quality writes without importing it (no OpenCV on the driver's
    comparisons): the two declarations of each side must agree."""
    from ptdm_spark.imaging import quality

    assert (hashing.DETAIL_SIDE, hashing.ALPHA_SIDE) == (quality.DETAIL_SIDE, quality.ALPHA_SIDE)
