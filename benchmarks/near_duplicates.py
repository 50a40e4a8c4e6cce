"""Near-duplicate benchmarks: detection quality on real photos, and search cost at scale.

    python -m benchmarks.near_duplicates quality            # photos + transformed copies
    python -m benchmarks.near_duplicates scale --n 1000000  # synthetic 64-bit hashes, in Spark
    python -m benchmarks.near_duplicates crops              # would a second, inner pHash find crops?

quality: every source photo (scikit-image's sample photos and Debian's gnome-backgrounds
wallpapers, one of each near-identical pair dropped) plus 12 copies of it: JPEG at quality 90 /
70 / 50 / 30, resized to 1/2 and 1/4, brightened, gamma 0.8 and 1.25, Gaussian blur (sigma 1.5),
cropped by 2 % and 4 % on every side. pHashes come from ``imaging.pipeline.process_image``, the
pipeline's own per-image function. Pairs are scored two ways at each threshold: *direct* (the
pair's own distance is within the threshold) and *component* (the two images end up in the same
component, which is what dedupe reports). Positive pairs: two images made from the same photo.

crops: the quality sets again, pHash pairs only (no dHash, colour or group rule): the direct
recall and the pairs of different sources within 10 and 12 bits, with the pipeline's pHash alone
and with each image's second pHash of its central part (``--inner``: 4 % off every side) matched
against the other image's whole-image pHash (both ways). A probe for issue 12's crop misses.

scale: N hashes in Spark, 10 % of them planted near copies of another at distance 1..threshold;
the banded search of the dedupe job (same transform), its candidate comparisons (model), time,
and the recall against brute force for a sample of 2,000 hashes (must be 1.0).
"""

from __future__ import annotations

import argparse
import glob
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ptdm_spark.imaging import hashing
from ptdm_spark.imaging.cv import cv2


def _photos(cache: Path) -> list[np.ndarray]:
    from benchmarks.prepare import source_photos

    out, seen = [], []
    for img in source_photos(cache):
        h = _phash(img)
        if any(hashing.hamming(h, s) <= 16 for s in seen):  # motorcycle left/right, chessboard grey/RGB...
            continue
        seen.append(h)
        if max(img.shape[:2]) > 1024:
            s = 1024 / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out.append(img)
    return out


def _record(data: bytes) -> dict:
    """The pipeline's own per-image record (``process_image``) for encoded bytes."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging.pipeline import Params, process_image

    global _PARAMS
    if _PARAMS is None:
        _PARAMS = Params.from_config(load_config().process)
    return process_image(data, _PARAMS)


def _png(bgr: np.ndarray) -> bytes:
    return cv2.imencode(".png", bgr)[1].tobytes()


def _phash(bgr: np.ndarray) -> int:
    return _record(_png(bgr))["phash"]


_PARAMS = None


def transforms(img: np.ndarray) -> dict[str, np.ndarray]:
    h, w = img.shape[:2]
    out = {"original": img}
    for q in (90, 70, 50, 30):
        out[f"jpeg{q}"] = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)
    out["half"] = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    out["quarter"] = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    out["brighter"] = cv2.convertScaleAbs(img, alpha=1.0, beta=30)
    for g in (0.8, 1.25):
        lut = np.array([(i / 255.0) ** g * 255 for i in range(256)]).astype(np.uint8)
        out[f"gamma{g}"] = cv2.LUT(img, lut)
    out["blur"] = cv2.GaussianBlur(img, (0, 0), 1.5)
    for c in (0.02, 0.04):
        dy, dx = int(h * c), int(w * c)
        out[f"crop{int(c * 100)}%"] = img[dy : h - dy, dx : w - dx]
    return out


# --- the image sets ------------------------------------------------------------------------------

ICONS = "/usr/share/icons/oxygen/base"  # Debian's oxygen-icon-theme
LOGOS = ["/usr/share/doc/opencv-doc/examples/data/" + f for f in
         ("LinuxLogo.jpg", "WindowsLogo.jpg", "opencv-logo.png", "opencv-logo-white.png")] + \
        ["/usr/share/doc/opencv-doc/opencv4/html/opencv-logo-small.png",
         "/usr/share/doc/opencv-doc/opencv4/html/opencv_logo.jpg"]  # Debian's opencv-doc


def _on_white(path: str) -> np.ndarray:
    """An image file as BGR, transparency composited on white (as ``process`` does)."""
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img.dtype == np.uint16:  # some Oxygen icons are 16-bit RGBA: scale to 8 bits first (as process does)
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[..., 3:4].astype(np.float32) / 255
        img = (img[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return img


def image_sets(cache: Path, icons: int, seed: int = 0) -> list[tuple[str, str, str, bytes, np.ndarray]]:
    """(set, source, version, encoded bytes, BGR) for every benchmark image.

    photos: each source photo and its 12 transformed copies. logos: OpenCV's sample logos, the
    same 13 versions. icons: ``icons`` Oxygen icons drawn at random from the 128 px folder, the
    same 13 versions, plus every 64 px icon of the theme as it is (source = the icon's name, so
    the 64 and 128 px drawings of one icon are the same source). Originals of files go in as
    their own bytes (transparency and all); transformed copies as PNG (JPEG ones as decoded).
    """
    out = []
    for i, img in enumerate(_photos(cache)):
        out += [("photo", f"photo{i:02d}", v, _png(x), x) for v, x in transforms(img).items()]
    for path in LOGOS:
        for v, x in transforms(_on_white(path)).items():
            out.append(("logo", Path(path).name, v, Path(path).read_bytes() if v == "original" else _png(x), x))
    names = sorted(str(Path(p).relative_to(f"{ICONS}/128x128")) for p in glob.glob(f"{ICONS}/128x128/*/*.png"))
    for name in np.random.default_rng(seed).choice(names, min(icons, len(names)), replace=False):
        path = f"{ICONS}/128x128/{name}"
        for v, x in transforms(_on_white(path)).items():
            out.append(("icon", name, v, Path(path).read_bytes() if v == "original" else _png(x), x))
    for path in sorted(glob.glob(f"{ICONS}/64x64/*/*.png")):
        name = str(Path(path).relative_to(f"{ICONS}/64x64"))
        out.append(("icon64", name, "original", Path(path).read_bytes(), _on_white(path)))
    return out


# --- an independent judge: is a tied pair clearly different? ------------------------------------

def visual_distance(a_bgr: np.ndarray, b_bgr: np.ndarray) -> float:
    """1 - the Pearson correlation of the two images as 32 x 32 RGB pixels, the best over centre
    crops of 0..5 % of either (so a cropped copy is compared with the matching part). Unlike the
    dedupe rule it looks at full-resolution colour pixels, not at hashes or the Lab thumbnail."""
    def vec(x):
        v = cv2.resize(x, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
        v -= v.mean()
        return v / (np.linalg.norm(v) + 1e-6)

    best = 2.0
    for first, second in ((a_bgr, b_bgr), (b_bgr, a_bgr)):
        other = vec(second)
        h, w = first.shape[:2]
        for c in (0.0, 0.01, 0.02, 0.03, 0.04, 0.05):
            dy, dx = round(h * c), round(w * c)
            best = min(best, 1.0 - float(vec(first[dy : h - dy, dx : w - dx]) @ other))
    return best


# --- the dedupe rule, in numpy ---------------------------------------------------------------------

def _features(images) -> dict[str, np.ndarray]:
    from ptdm_spark.config import load_config

    q = load_config().process.quality
    recs = [_record(data) for _, _, _, data, _ in images]
    bad = [i for i, r in enumerate(recs) if r["reason"]]
    if bad:
        raise SystemExit(f"{len(bad)} benchmark images rejected, e.g. {images[bad[0]][:3]}: {recs[bad[0]]['reason']}")
    f = {k: np.array([r[k] for r in recs]) for k in ("phash", "phash_inner", "dhash", "width", "height", "entropy",
                                                     "contrast")}
    f["pixel"] = np.array([r["pixel_sha256"] for r in recs])
    f["thumb"] = np.frombuffer(b"".join(r["colour_thumb"] for r in recs), np.uint8).reshape(len(recs), -1)
    f["thumbs"] = np.array([r["colour_thumb"] for r in recs] + [None], object)[:-1]
    f["details"] = np.array([r["detail_thumb"] for r in recs] + [None], object)[:-1]
    f["alphas"] = np.array([r["alpha_thumb"] for r in recs] + [None], object)[:-1]
    f["low_information"] = f["entropy"] < q.entropy_min
    f["near_constant"] = f["contrast"] < q.near_constant_max
    sums = np.array([r["pixel_sums"] for r in recs], np.float64)
    f["rgb"] = np.round(sums[:, 1:4] / sums[:, :1] * 255)  # mean colour in levels, as flat_colours
    return f


def _rule(f: dict, rule: str):
    """The groups the dedupe job would make under ``rule`` (``old``: the rule before issue 12;
    ``colour``: checked on the 16x16 colour thumbnail only, as before detail thumbnails and the
    inner pHash; ``new``: the configured rule): (kept index per image, edge count)."""
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging import graph

    dedupe = load_config().dedupe
    cfg = dedupe.phash
    n = len(f["phash"])
    skip = ("near_constant", "low_information") if rule == "old" else cfg.skip_flags
    side = np.minimum(f["width"], f["height"])
    eligible = side >= cfg.min_side
    # Small images (small_min_side .. min_side) pair with eligible ones only (new rule).
    small = (side < cfg.min_side) & (side >= cfg.small_min_side) if rule == "new" else np.zeros(len(side), bool)
    for flag in skip:
        eligible &= ~f[flag]
        small &= ~f[flag]
    u = f["phash"].astype(np.int64).view(np.uint64)
    inner_values = np.where(small, f["phash"], f["phash_inner"])  # a small image's inner pHash is its whole one
    v = inner_values.astype(np.int64).view(np.uint64)
    du = f["dhash"].astype(np.int64).view(np.uint64)
    inner = rule == "new" and cfg.inner_search
    ia, ib = [], []
    for s in range(0, n, 512):  # candidate pairs: the pHash rule, both images eligible
        d = np.bitwise_count(u[s:s + 512, None] ^ u[None, :])
        dd = np.bitwise_count(du[s:s + 512, None] ^ du[None, :])
        ok = (d <= cfg.confirm_above) | ((d <= cfg.max_distance) & (dd <= cfg.dhash_max_distance))
        if inner:  # the inner search: a whole or inner value of one within inner_max_distance of one of the other's
            cross = np.minimum(np.minimum(np.bitwise_count(u[s:s + 512, None] ^ v[None, :]),
                                          np.bitwise_count(v[s:s + 512, None] ^ u[None, :])),
                               np.bitwise_count(v[s:s + 512, None] ^ v[None, :]))
            ok |= cross <= cfg.inner_max_distance
        ok &= (eligible[s:s + 512, None] & (eligible | small)[None, :]) | (small[s:s + 512, None] & eligible[None, :])
        i, j = np.nonzero(ok)
        keep = s + i < j
        ia.append(s + i[keep])
        ib.append(j[keep])
    a, b = np.concatenate(ia), np.concatenate(ib)
    same_pixels = np.unique(f["pixel"], return_inverse=True)[1]
    px_a, px_b = [], []
    for g in np.flatnonzero(np.bincount(same_pixels) > 1):
        m = np.flatnonzero(same_pixels == g)
        px_a += [m[0]] * (len(m) - 1)
        px_b += list(m[1:])
    rank = np.lexsort((np.arange(n), -(f["width"].astype(np.int64) * f["height"])))
    order = np.empty(n, np.int64)
    order[rank] = np.arange(n)
    if rule == "old":
        a, b = np.concatenate([a, px_a]), np.concatenate([b, px_b])
        nodes, comp = graph.components(a, b)
        kept = np.arange(n)
        best = {}
        for node, c in zip(nodes, comp):
            if c not in best or order[node] < order[best[c]]:
                best[c] = node
        for node, c in zip(nodes, comp):
            kept[node] = best[c]
        return kept, len(a)
    if rule == "colour":  # the rule before detail thumbnails: colour thumbnails only
        details = alphas = np.array([None] * n + [b""], object)[:-1]
    else:
        details, alphas = f["details"], f["alphas"]
    ok = hashing.pairs_alike(f["thumbs"][a], f["thumbs"][b], details[a], details[b], cfg.colour_max_distance,
                             cfg.detail_max_distance, alphas[a], alphas[b], cfg.alpha_max)
    a, b = np.concatenate([a[ok], px_a]), np.concatenate([b[ok], px_b])

    bound = hashing.near_kept(f["phash"], f["thumbs"], details, f["pixel"], cfg.member_max_distance,
                              cfg.colour_max_distance, cfg.detail_max_distance, checked=(a, b),
                              inner=inner_values if inner else None, small=small, alphas=alphas,
                              alpha_max=cfg.alpha_max)

    def near_kept(k, m):  # neither eligible nor small: joins by identical pixels only
        return bound(k, m) & (eligible[m] | small[m] | (f["pixel"][m] == f["pixel"][k]))

    kept = graph.bounded_groups(n, a, b, order, near_kept)
    if rule == "new" and "flat" in dedupe.methods:  # flat images: by mean colour
        flat = np.flatnonzero(f["near_constant"] & ~eligible & ~small)
        flat = flat[np.argsort(order[flat], kind="stable")]
        kept[flat] = flat[graph.centre_groups(f["rgb"][flat] / 255.0, dedupe.flat.max_distance)]
    return kept, len(a)


def quality(cache: Path, icons: int, sheet: Path | None, rules=("old", "colour", "new")) -> None:
    images = image_sets(cache, icons)
    f = _features(images)
    kind = np.array([im[0] for im in images])
    source = np.array([im[1] for im in images])
    version = np.array([im[2] for im in images])
    print(f"{len(images)} images: " + ", ".join(f"{k} {int((kind == k).sum())}" for k in ("photo", "logo", "icon", "icon64"))
          + f"; flagged low_information {int(f['low_information'].sum())}, near_constant {int(f['near_constant'].sum())}")
    # What a true copy may look like to the judge: the largest visual distance of a copy to its original.
    copies = [(i, np.flatnonzero((source == source[i]) & (version == "original") & (kind == kind[i]))[0])
              for i in np.flatnonzero((version != "original") & (kind != "icon64"))]
    judge = max(visual_distance(images[i][4], images[j][4]) for i, j in copies)
    print(f"largest visual distance of a transformed copy to its original: {judge:.3f} "
          f"(a tied pair farther than this is clearly different)")
    print()
    print("| rule | set | images | recall (pairs of one source tied) | precision (tied pairs of one source) "
          "| images tied to a clearly different kept image | same-artwork pairs tied | edges |")
    print("|---|---|---|---|---|---|---|---|")
    artwork = None
    for rule in rules:
        kept, edges = _rule(f, rule)
        for k in ("photo", "logo", "icon"):
            m = np.flatnonzero(kind == k)
            g, src = kept[m], source[m]
            same_src = src[:, None] == src[None, :]
            tied = g[:, None] == g[None, :]
            iu = np.triu_indices(len(m), 1)
            tp = int((same_src & tied)[iu].sum())
            recall = tp / max(1, int(same_src[iu].sum()))
            precision = tp / max(1, int(tied[iu].sum()))
            print(f"| {rule} | {k} (x13 versions) | {len(m)} | {recall:.3f} | {precision:.4f} | | | {edges} |")
        # Distinct icons as they are (64 px), among the photos and logos: the collection.
        m = np.flatnonzero((kind == "icon64") | (version == "original") & (kind != "icon"))
        tied = [(i, kept[i]) for i in m if kept[i] != i]
        dist = {(i, j): visual_distance(images[i][4], images[j][4]) for i, j in tied}
        clear = [(i, j) for (i, j), d in dist.items() if d > judge]
        if artwork is None:  # different names, the same drawing: within 0.01 of each other
            u = f["phash"][m].astype(np.int64).view(np.uint64)
            ii, jj = np.nonzero(np.triu(np.bitwise_count(u[:, None] ^ u[None, :]) <= 16, 1))
            artwork = [(m[i], m[j]) for i, j in zip(ii, jj)
                       if visual_distance(images[m[i]][4], images[m[j]][4]) <= 0.01]
        art_tied = sum(kept[i] == kept[j] for i, j in artwork)
        print(f"| {rule} | 64 px icons as they are + photo and logo originals | {len(m)} | | "
              f"| {len(clear)} ({100 * len(clear) / len(m):.1f} %) of {len(tied)} tied "
              f"| {art_tied} / {len(artwork)} | |")
        if sheet is not None:
            _contact_sheet(images, sorted(dist, key=lambda p: -dist[p]), dist, judge,
                           sheet.with_name(f"{sheet.stem}-{rule}{sheet.suffix}"))


def crops(cache: Path, icons: int, inner: list[float]) -> None:
    """Direct pHash recall with and without the inner pHashes (see the module docstring)."""
    from ptdm_spark.imaging import quality as q

    images = image_sets(cache, icons)
    f = _features(images)
    kind = np.array([im[0] for im in images])
    source = np.array([im[1] for im in images])
    version = np.array([im[2] for im in images])

    def inner_phash(bgr: np.ndarray, c: float) -> int:
        _, grey = q.working_grey(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        h, w = grey.shape
        dy, dx = round(h * c), round(w * c)
        return q.phash(grey[dy:h - dy, dx:w - dx])

    whole = f["phash"].astype(np.int64).view(np.uint64)
    inners = {c: np.array([inner_phash(im[4], c) for im in images]).astype(np.int64).view(np.uint64) for c in inner}

    def dist(m: np.ndarray, cs: list[float]) -> np.ndarray:
        d = np.bitwise_count(whole[m][:, None] ^ whole[m][None, :])
        for c in cs:
            cross = np.bitwise_count(whole[m][:, None] ^ inners[c][m][None, :])
            d = np.minimum(d, np.minimum(cross, cross.T))
        return d

    print("| set | hashes | bits | direct recall | recall of the 4 % crops | pairs of different sources |")
    print("|---|---|---|---|---|---|")
    def named(cs: list[float]) -> str:
        return "pHash + inner " + ", ".join(f"{round(c * 100)} %" for c in cs)

    variants = [("pHash", []), (named(inner[:1]), inner[:1])] + ([(named(inner), inner)] if len(inner) > 1 else [])
    for k in ("photo", "logo", "icon"):
        m = np.flatnonzero(kind == k)
        iu = np.triu_indices(len(m), 1)
        same = (source[m][:, None] == source[m][None, :])[iu]
        crop = ((version[m][:, None] == "crop4%") | (version[m][None, :] == "crop4%"))[iu]
        for name, cs in variants:
            d = dist(m, cs)[iu]
            for t in (10, 12):
                ok = d <= t
                print(f"| {k} | {name} | {t} | {(ok & same).sum() / same.sum():.3f} "
                      f"| {(ok & same & crop).sum() / (same & crop).sum():.3f} | {int((ok & ~same).sum())} |")
    m = np.flatnonzero((kind == "icon64") | ((version == "original") & (kind != "icon")))
    iu = np.triu_indices(len(m), 1)
    for name, cs in variants:
        d = dist(m, cs)[iu]
        print(f"| 64 px icons as they are + originals ({len(m)}) | {name} | 10 / 12 | | "
              f"| {int((d <= 10).sum())} / {int((d <= 12).sum())} |")


def _contact_sheet(images, pairs, dist, judge, path: Path, per_row: int = 6, most: int = 96) -> None:
    """The tied pairs (member | kept), farthest first, with their visual distance; red text: clearly different."""
    tiles = []
    for i, j in pairs[:most]:
        t = np.full((88, 140, 3), 255, np.uint8)
        for x0, k in ((0, i), (72, j)):
            im = images[k][4]
            s = 64 / max(im.shape[:2])
            im = cv2.resize(im, (max(1, round(im.shape[1] * s)), max(1, round(im.shape[0] * s))), interpolation=cv2.INTER_AREA)
            t[: im.shape[0], x0 : x0 + im.shape[1]] = im
        colour = (0, 0, 200) if dist[(i, j)] > judge else (0, 0, 0)
        cv2.putText(t, f"{dist[(i, j)]:.2f}", (2, 78), cv2.FONT_HERSHEY_PLAIN, 0.9, colour, 1)
        tiles.append(t)
    while len(tiles) % per_row or not tiles:
        tiles.append(np.full((88, 140, 3), 255, np.uint8))
    rows = [np.hstack(tiles[r : r + per_row]) for r in range(0, len(tiles), per_row)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    print(f"contact sheet: {path} ({min(len(pairs), most)} of {len(pairs)} tied pairs, farthest first)")


def _planted(n: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n hashes: 90 % random, 10 % near copies (1..t bits flipped) of a random one of them.
    Returns the distinct hashes and, per hash, the index of its source (itself for a random one)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-(1 << 63), (1 << 63) - 1, n - n // 10, dtype=np.int64)
    src_idx = rng.integers(0, len(base), n // 10)
    src = base[src_idx].view(np.uint64).copy()
    for i in range(len(src)):
        for bit in rng.choice(64, int(rng.integers(1, t + 1)), replace=False):
            src[i] ^= np.uint64(1) << np.uint64(bit)
    allh = np.concatenate([base, src.view(np.int64)])
    origin = np.concatenate([np.arange(len(base)), src_idx])
    hashes, first = np.unique(allh, return_index=True)
    return hashes, origin[first]


def scale(n: int, t: int, blocks: int, sample: int, groups: bool = True, inner: bool = True) -> None:
    from ptdm_spark.config import load_config
    from ptdm_spark.session import get_session
    from ptdm_spark.transforms import dedupe as t_dedupe

    hashes, origin = _planted(n, t)
    tmp = tempfile.mkdtemp(prefix="ptdm-neardup-")
    cfg = load_config("local", (), [f"lakehouse.root={tmp}/lakehouse", "spark.driver_memory=6g", "spark.progress=false",
                                    "spark.log_level=ERROR"])
    spark = get_session(cfg.spark, cfg.lakehouse)
    import pandas as pd

    pd.DataFrame({"phash": hashes, "is_new": True}).to_parquet(f"{tmp}/hashes.parquet")
    df = spark.read.parquet(f"{tmp}/hashes.parquet")
    masks = hashing.band_masks(t, blocks)
    parts = max(4, -(-len(hashes) * len(masks) // 2_000_000))
    start = time.monotonic()
    t_dedupe.near_pairs(df, masks, t, parts, "bench", all_new=True).write.mode("overwrite").parquet(f"{tmp}/pairs")
    took = time.monotonic() - start
    pairs = spark.read.parquet(f"{tmp}/pairs").toPandas()
    found = set(zip(pairs["a"].tolist(), pairs["b"].tolist()))

    rng = np.random.default_rng(1)
    u = hashes.view(np.uint64)
    want = set()
    for i in rng.choice(len(hashes), min(sample, len(hashes)), replace=False):
        d = np.bitwise_count(u ^ u[i])
        for j in np.flatnonzero(d <= t):
            if j != i:
                a, b = int(hashes[i]), int(hashes[j])
                want.add((min(a, b), max(a, b)))
    recall = len(want & found) / max(1, len(want))
    peak = _jvm_peak_mb(spark)
    print(f"| {len(hashes):,} | {t} | {blocks} | {len(masks)} | {hashing.expected_comparisons(len(hashes), t, blocks):.2e} "
          f"| {len(found):,} | {took:.0f} s | {recall:.3f} ({len(want)} pairs) | {peak} |", flush=True)
    _time_incremental(spark, tmp, hashes, t, blocks)
    if inner:
        _time_inner(spark, cfg, tmp, hashes)
    if groups:
        _time_groups(spark, cfg, tmp, hashes, origin)
    spark.stop()


def _time_incremental(spark, tmp: str, hashes: np.ndarray, t: int, blocks: int, batch: int = 10_000) -> None:
    """A later run: ``batch`` new hashes (a tenth of them near copies of old ones) searched
    against all (new against old and new, never old against old: only buckets holding a new hash
    are compared); recall against brute force for every new hash."""
    import pandas as pd

    from ptdm_spark.transforms import dedupe as t_dedupe

    rng = np.random.default_rng(5)
    new = rng.integers(-(1 << 63), (1 << 63) - 1, batch, dtype=np.int64).view(np.uint64)
    for i in range(0, batch, 10):
        new[i] = hashes.view(np.uint64)[rng.integers(len(hashes))]
        for bit in rng.choice(64, int(rng.integers(1, t + 1)), replace=False):
            new[i] ^= np.uint64(1) << np.uint64(bit)
    new = np.setdiff1d(np.unique(new.view(np.int64)), hashes)
    pd.DataFrame({"phash": np.concatenate([hashes, new]),
                  "is_new": np.r_[np.zeros(len(hashes), bool), np.ones(len(new), bool)]}).to_parquet(f"{tmp}/later.parquet")
    df = spark.read.parquet(f"{tmp}/later.parquet")
    masks = hashing.band_masks(t, blocks)
    parts = max(4, -(-(len(hashes) + len(new)) * len(masks) // 2_000_000))
    start = time.monotonic()
    t_dedupe.near_pairs(df, masks, t, parts, "bench", all_new=False).write.mode("overwrite").parquet(f"{tmp}/later_pairs")
    took = time.monotonic() - start
    got = spark.read.parquet(f"{tmp}/later_pairs").toPandas()
    found = set(zip(got["a"].tolist(), got["b"].tolist()))
    everything = np.concatenate([hashes, new]).view(np.uint64)
    want = set()
    for v in new.view(np.uint64):
        for j in np.flatnonzero(np.bitwise_count(everything ^ v) <= t):
            a, b = int(v.view(np.int64)), int(everything[j].view(np.int64))
            if a != b:
                want.add((min(a, b), max(a, b)))
    print(f"incremental search: {len(new):,} new hashes against {len(hashes) + len(new):,}: {len(found):,} pairs in "
          f"{took:.0f} s; recall vs brute force {len(want & found) / max(1, len(want)):.3f} ({len(want)} pairs), "
          f"old-old pairs returned: {len(found - want)}", flush=True)


def _time_inner(spark, cfg, tmp: str, hashes: np.ndarray) -> None:
    """The dedupe job's second search (cropped copies): every image's whole value and an inner
    value (here: a copy of every tenth whole value with 1..inner_max_distance bits flipped, the
    rest random) in one banded search at inner_max_distance bits with inner_blocks blocks, all
    new; recall against brute force for a sample of 2,000 values."""
    import pandas as pd

    from ptdm_spark.transforms import dedupe as t_dedupe

    p = cfg.dedupe.phash
    rng = np.random.default_rng(3)
    inner = rng.integers(-(1 << 63), (1 << 63) - 1, len(hashes), dtype=np.int64).view(np.uint64)
    near = np.arange(0, len(hashes), 10)
    inner[near] = hashes[near].view(np.uint64)
    for i in near:
        for bit in rng.choice(64, int(rng.integers(1, p.inner_max_distance + 1)), replace=False):
            inner[i] ^= np.uint64(1) << np.uint64(bit)
    values = np.unique(np.concatenate([hashes, inner.view(np.int64)]))
    pd.DataFrame({"phash": values, "is_new": True}).to_parquet(f"{tmp}/values.parquet")
    df = spark.read.parquet(f"{tmp}/values.parquet")
    masks = hashing.band_masks(p.inner_max_distance, p.inner_blocks)
    parts = max(4, -(-len(values) * len(masks) // 2_000_000))
    start = time.monotonic()
    t_dedupe.near_pairs(df, masks, p.inner_max_distance, parts, "bench", all_new=True) \
        .write.mode("overwrite").parquet(f"{tmp}/inner_pairs")
    took = time.monotonic() - start
    got = spark.read.parquet(f"{tmp}/inner_pairs").toPandas()
    found = set(zip(got["a"].tolist(), got["b"].tolist()))
    u = values.view(np.uint64)
    want = set()
    for i in np.random.default_rng(4).choice(len(values), min(2000, len(values)), replace=False):
        for j in np.flatnonzero(np.bitwise_count(u ^ u[i]) <= p.inner_max_distance):
            if j != i:
                a, b = int(values[i]), int(values[j])
                want.add((min(a, b), max(a, b)))
    print(f"inner search: {len(values):,} whole and inner values, {p.inner_max_distance} bits, {p.inner_blocks} blocks "
          f"({len(masks)} keys): {len(found):,} pairs in {took:.0f} s; recall vs brute force "
          f"{len(want & found) / max(1, len(want)):.3f} ({len(want)} pairs)", flush=True)


def _time_groups(spark, cfg, tmp: str, hashes: np.ndarray, origin: np.ndarray) -> None:
    """After the search, the dedupe job's next steps on the stored pairs: image pairs checked on
    dHash and colour (``image_edges``), then bounded groups on the driver and in Spark."""
    from ptdm_spark.transforms import dedupe as t_dedupe

    p = cfg.dedupe.phash
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2)
    m = len(hashes)
    _, src_row = np.unique(origin, return_inverse=True)  # one source row per distinct origin
    n_src = int(src_row.max()) + 1
    dh = rng.integers(-(1 << 63), (1 << 63) - 1, n_src, dtype=np.int64)[src_row]
    pixels = rng.integers(1000, 10**6, m)
    # Thumbnails in chunks (a million 3,072-byte detail thumbnails are 3 GB): each source's from a
    # generator seeded by the source, each image's plus +-3 levels of its own noise.
    writer = None
    for s in range(0, m, 50_000):
        rows = np.arange(s, min(m, s + 50_000))
        colour, detail = [], []
        for r in rows:
            g = np.random.default_rng(int(src_row[r]) + 1_000_003)
            c = g.integers(0, 256, 768).astype(np.int16)
            d = g.integers(0, 256, 3072).astype(np.int16)
            noise = rng.integers(-3, 4, 768 + 3072)
            colour.append(np.clip(c + noise[:768], 0, 255).astype(np.uint8).tobytes())
            detail.append(np.clip(d + noise[768:], 0, 255).astype(np.uint8).tobytes())
        ids = [f"{i:08x}" for i in rows]
        table = pa.table({"image_id": ids, "pixels": pixels[rows], "phash": hashes[rows], "phash_inner": hashes[rows],
                          "dhash": dh[rows],
                          "colour_thumb": pa.array(colour, pa.binary()), "detail_thumb": pa.array(detail, pa.binary()),
                          "alpha_thumb": pa.array([None] * len(rows), pa.binary()),
                          "pixel_sha256": ids, "small": np.zeros(len(rows), bool)})
        if writer is None:
            writer = pq.ParquetWriter(f"{tmp}/nodes.parquet", table.schema)
        writer.write_table(table)
    writer.close()
    nodes = spark.read.parquet(f"{tmp}/nodes.parquet")
    pairs = spark.read.parquet(f"{tmp}/pairs")
    start = time.monotonic()
    t_dedupe.image_edges(pairs, nodes, p.confirm_above, p.dhash_max_distance, p.colour_max_distance,
                         p.detail_max_distance, p.alpha_max) \
        .write.mode("overwrite").parquet(f"{tmp}/edges")
    t_edges = time.monotonic() - start
    edges = spark.read.parquet(f"{tmp}/edges")
    n_edges = edges.count()
    start = time.monotonic()
    t_dedupe.groups_in_memory(edges, nodes, p.member_max_distance, p.colour_max_distance, p.detail_max_distance,
                              p.alpha_max) \
        .write.mode("overwrite").parquet(f"{tmp}/groups_driver")
    t_driver = time.monotonic() - start
    start = time.monotonic()
    comps = t_dedupe.components(edges, lambda d, i: d.localCheckpoint())
    t_dedupe.groups_in_spark(edges, nodes, comps, p.member_max_distance, p.colour_max_distance,
                             p.detail_max_distance, p.alpha_max) \
        .write.mode("overwrite").parquet(f"{tmp}/groups_spark")
    t_spark = time.monotonic() - start
    g1 = spark.read.parquet(f"{tmp}/groups_driver").toPandas().sort_values("image_id").reset_index(drop=True)
    g2 = spark.read.parquet(f"{tmp}/groups_spark").toPandas().sort_values("image_id").reset_index(drop=True)
    print(f"checked image pairs: {n_edges:,} of {pairs.count():,} hash pairs, {t_edges:.0f} s; bounded groups on the driver "
          f"{t_driver:.0f} s ({len(g1):,} images in groups, {(g1.image_id != g1.kept_id).sum():,} duplicates), "
          f"in Spark (components + groups) {t_spark:.0f} s; driver and Spark agree: {g1.equals(g2)}", flush=True)


def _jvm_peak_mb(spark) -> str:
    """Peak heap of the driver JVM (local mode: it runs the tasks too)."""
    try:
        jvm = spark.sparkContext._jvm
        pools = jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
        peak = sum(p.getPeakUsage().getUsed() for p in pools if str(p.getType()) == "Heap memory")
        return f"{peak / 2**20:.0f} MB"
    except Exception:  # a report detail, never worth failing the benchmark for
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--icons", type=int, default=150, help="128 px icons drawn for the transformed copies")
    q.add_argument("--sheet", type=Path, default=Path("benchmarks/out/near-duplicate-ties.png"))
    q.add_argument("--rules", nargs="+", default=["old", "colour", "new"], choices=["old", "colour", "new"],
                   help="old: transitive pHash/dHash; colour: checked on the 16x16 colour thumbnail; new: the configured rule")
    q.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ptdm-bench-cache")
    c = sub.add_parser("crops")
    c.add_argument("--icons", type=int, default=150)
    c.add_argument("--inner", type=float, nargs="+", default=[0.04, 0.02], help="crop per side of the inner pHash")
    c.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ptdm-bench-cache")
    s = sub.add_parser("scale")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--threshold", type=int, default=12)
    s.add_argument("--blocks", type=int, default=14)
    s.add_argument("--sample", type=int, default=2000)
    s.add_argument("--no-groups", action="store_true", help="time the search only, not the checked pairs and groups")
    s.add_argument("--no-inner", action="store_true", help="skip the second (inner pHash) search")
    a = p.parse_args(argv)
    if a.what == "quality":
        quality(a.cache, a.icons, a.sheet, a.rules)
    elif a.what == "crops":
        crops(a.cache, a.icons, a.inner)
    else:
        print("| hashes | threshold | blocks | keys per hash | comparisons (model) | pairs found | time "
              "| recall vs brute force | driver heap peak |")
        print("|---|---|---|---|---|---|---|---|---|")
        scale(a.n, a.threshold, a.blocks, a.sample, groups=not a.no_groups, inner=not a.no_inner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
