"""Near-duplicate search over 64-bit perceptual hashes without comparing all pairs.

Banding (pigeonhole): the 64 bits are split into ``blocks`` contiguous blocks. Two hashes at
Hamming distance ``d <= max_distance`` differ in at most ``d`` blocks, so they agree exactly on at
least ``blocks - max_distance`` of them. A *band key* is one choice of ``blocks - max_distance``
blocks (the hash masked to those bits); every such pair therefore shares at least one band key
exactly, and only hashes that share a key are ever compared. With ``blocks = max_distance + 1``
a key is a single block (the classic scheme); more blocks give longer keys (smaller buckets, far
fewer comparisons) at the price of more keys per hash: ``C(blocks, max_distance)`` of them.

Inside a bucket the exact distance of every candidate pair is computed with numpy, a block of
rows at a time, so candidate pairs are never materialized as rows.

Pure numpy; no pyspark.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator

import numpy as np

_BLOCK_ROWS = 64  # rows compared per numpy step: 64 x bucket stays in cache (measured: ~3 ns per pair)


def block_masks(blocks: int) -> list[int]:
    """The bit masks of ``blocks`` contiguous blocks covering all 64 bits (sizes differ by at most 1)."""
    if not 1 <= blocks <= 64:
        raise ValueError("blocks must be between 1 and 64")
    edges = [round(i * 64 / blocks) for i in range(blocks + 1)]
    return [((1 << (hi - lo)) - 1) << (64 - hi) for lo, hi in zip(edges, edges[1:])]


def band_masks(max_distance: int, blocks: int) -> list[int]:
    """One mask per band key: the union of ``blocks - max_distance`` blocks, every combination.

    Returned as signed 64-bit integers (Spark's BIGINT) so that ``hash & mask`` works in SQL.
    """
    if not 0 <= max_distance < blocks:
        raise ValueError("blocks must be greater than max_distance")
    masks = block_masks(blocks)
    out = []
    for combo in itertools.combinations(range(blocks), blocks - max_distance):
        m = 0
        for i in combo:
            m |= masks[i]
        out.append(m - (1 << 64) if m >= 1 << 63 else m)
    return out


def keys_per_hash(max_distance: int, blocks: int) -> int:
    return math.comb(blocks, max_distance)


def expected_comparisons(n: int, max_distance: int, blocks: int) -> float:
    """Pairs compared for ``n`` uniformly random hashes: keys x buckets x (bucket size)^2 / 2."""
    key_bits = 64 * (blocks - max_distance) / blocks
    buckets = 2.0**key_bits
    return keys_per_hash(max_distance, blocks) * buckets * (n / buckets) ** 2 / 2


def hamming(a: int, b: int) -> int:
    return int(np.bitwise_count(np.uint64((a ^ b) & 0xFFFFFFFFFFFFFFFF)))


def bucket_pairs(hashes: np.ndarray, is_new: np.ndarray, max_distance: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Pairs within ``max_distance`` among the hashes of one bucket, at least one of them new.

    Args:
        hashes: distinct int64 hashes sharing one band key.
        is_new: which of them were not searched before (old-old pairs are already known).
        max_distance: the Hamming distance threshold (inclusive).

    Yields:
        (a, b, distance) arrays with ``a < b`` (as signed integers), in chunks.
    """
    h = np.asarray(hashes, dtype=np.int64)
    new = np.asarray(is_new, dtype=bool)
    order = np.argsort(~new, kind="stable")  # new hashes first
    h, n_new = h[order], int(new.sum())
    u = h.view(np.uint64)
    for s in range(0, n_new, _BLOCK_ROWS):
        e = min(s + _BLOCK_ROWS, n_new)
        # Row i (new) against every j > i: new-new pairs once, new-old pairs once.
        d = np.bitwise_count(u[s:e, None] ^ u[None, s + 1:])
        ii, jj = np.nonzero(d <= max_distance)
        jj_abs = jj + s + 1
        keep = jj_abs > ii + s
        if not keep.any():
            continue
        ii, jj, jj_abs = ii[keep], jj[keep], jj_abs[keep]
        a, b = h[ii + s], h[jj_abs]
        yield np.minimum(a, b), np.maximum(a, b), d[ii, jj].astype(np.int32)


def bucket_cross_pairs(hashes: np.ndarray, is_new: np.ndarray, small: np.ndarray,
                       max_distance: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Like :func:`bucket_pairs`, but only pairs of a ``small`` hash with one that is not (small
    images' pHashes against the eligible images'), at least one of the two new; a hash never
    pairs with itself (images sharing one value are paired elsewhere).

    Args:
        hashes: int64 hashes sharing one band key (a value may come twice, once on each side).
        is_new: which rows were not searched on their side before.
        small: which rows stand for small images' values.
    """
    h = np.asarray(hashes, dtype=np.int64)
    new, small = np.asarray(is_new, dtype=bool), np.asarray(small, dtype=bool)
    hs, ns, he, ne = h[small], new[small], h[~small], new[~small]
    if not len(hs) or not len(he):
        return
    us, ue = hs.view(np.uint64), he.view(np.uint64)
    for s in range(0, len(hs), _BLOCK_ROWS):
        e = min(s + _BLOCK_ROWS, len(hs))
        d = np.bitwise_count(us[s:e, None] ^ ue[None, :])
        ok = (d <= max_distance) & (ns[s:e, None] | ne[None, :]) & (hs[s:e, None] != he[None, :])
        ii, jj = np.nonzero(ok)
        if len(ii):
            a, b = hs[ii + s], he[jj]
            yield np.minimum(a, b), np.maximum(a, b), d[ii, jj].astype(np.int32)


THUMB_SIDE = 16  # cells a side of the colour thumbnail (``quality.colour_thumb``: 16 x 16 x Lab, 768 bytes)
CHROMA_WEIGHT = 4.0  # a and b count four times L: a red and a blue folder of one shape must fall apart


def _centred(thumbs: np.ndarray) -> np.ndarray:
    """(n, 768) uint8 Lab thumbnails -> (n, 16, 16, 3) float: L minus its mean (brightness and
    gamma shift it), a and b minus their neutral 128, weighted by ``CHROMA_WEIGHT``."""
    return _centred_cells(np.asarray(thumbs, np.uint8).reshape(-1, THUMB_SIDE, THUMB_SIDE, 3).astype(np.float32))


def _centred_cells(t: np.ndarray) -> np.ndarray:
    """:func:`_centred` of (n, 16, 16, 3) float Lab cells (a new array)."""
    out = np.empty_like(t)
    out[..., 0] = t[..., 0] - t[..., 0].mean(axis=(1, 2), keepdims=True)
    out[..., 1:] = (t[..., 1:] - 128.0) * CHROMA_WEIGHT
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 9): the cosine of a's inner 14x14 cells with b's 14x14 window shifted by (dy, dx) in
    -1..1 cells, shifts in row order ((-1, -1), (-1, 0), ..., (1, 1))."""
    s = THUMB_SIDE
    inner = a[:, 1:s - 1, 1:s - 1].reshape(len(a), -1)
    inner = inner / (np.linalg.norm(inner, axis=1, keepdims=True) + 1.0)
    out = np.empty((len(a), 9), np.float32)
    for k, (dy, dx) in enumerate((dy, dx) for dy in range(3) for dx in range(3)):
        w = b[:, dy:dy + s - 2, dx:dx + s - 2].reshape(len(b), -1)
        w = w / (np.linalg.norm(w, axis=1, keepdims=True) + 1.0)
        out[:, k] = (inner * w).sum(axis=1)
    return out


def _one_way(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - the best cosine of a's inner 14x14 cells against b's cells shifted by -1..1 cell."""
    return 1.0 - _cosines(a, b).max(axis=1)


def colour_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance (0 = same, up to 2) between the colour thumbnails of pairs of images, row by row.

    One minus the cosine of the two thumbnails as vectors of (L - mean L, 2a, 2b) over their cells,
    the best over shifts of up to one cell (crops of a few per cent move content by that much),
    the worse of the two directions. Invariant to brightness (L's mean is removed) and to contrast
    (a cosine); a change of colour turns the chroma part around. Images that share a luminance
    layout (a pHash) but differ in colour or in a detail of a sixteenth of their area are apart.

    Args:
        a, b: (n, 768) uint8 arrays (or n bytes objects of 768) of ``quality.colour_thumb``.
    """
    ta, tb = _centred(_as_rows(a)), _centred(_as_rows(b))
    return np.maximum(_one_way(ta, tb), _one_way(tb, ta))


def _as_rows(x) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        return x.reshape(-1, THUMB_SIDE * THUMB_SIDE * 3)
    return np.frombuffer(b"".join(bytes(v) for v in x), np.uint8).reshape(-1, THUMB_SIDE * THUMB_SIDE * 3)


def near_kept(phash: np.ndarray, thumbs: np.ndarray, details: np.ndarray, pixel: np.ndarray,
              member_max: int, colour_max: float, detail_max: float,
              checked: tuple[np.ndarray, np.ndarray] | None = None, inner: np.ndarray | None = None,
              small: np.ndarray | None = None, alphas: np.ndarray | None = None, alpha_max: float = 1.0):
    """The bound of a near-duplicate group, for :func:`ptdm_spark.imaging.graph.bounded_groups`:
    a node may join the group kept by ``k`` when it has ``k``'s pixels, or one of its pHashes
    (whole or ``inner``) is within ``member_max`` bits of one of ``k``'s and it looks like ``k``
    (:func:`pairs_alike`).

    Args: per node: phash and inner (int64; inner: the whole pHash where a node has none, or
    None for no inner pHashes at all), thumbs, details and alphas (object arrays of the colour,
    detail and alpha thumbnails' bytes, None where missing; alphas None: none at all), pixel
    (pixel SHA-256 strings). ``checked``: node pairs (a, b) already found alike (the graph's
    edges): not looked at again. ``small``: nodes under min_side, which never join a small kept
    node (a small image may be the largest of its component, say 88 x 31 pixels against 40 x 40)
    except by identical pixels. ``alpha_max``: see :func:`pairs_alike`.
    """
    u = np.asarray(phash, np.int64).view(np.uint64)
    v = u if inner is None else np.asarray(inner, np.int64).view(np.uint64)
    n = len(u)
    known = np.empty(0, np.int64)
    if checked is not None and len(checked[0]):
        ca, cb = np.asarray(checked[0], np.int64), np.asarray(checked[1], np.int64)
        known = np.unique(np.concatenate([ca * n + cb, cb * n + ca]))

    def fn(k: int, m: np.ndarray) -> np.ndarray:
        same = pixel[m] == pixel[k]
        bits = np.minimum(np.minimum(np.bitwise_count(u[m] ^ u[k]), np.bitwise_count(u[m] ^ v[k])),
                          np.minimum(np.bitwise_count(v[m] ^ u[k]), np.bitwise_count(v[m] ^ v[k])))
        close = ~same & (bits <= member_max)
        if small is not None and small[k]:
            close &= ~small[m]
        if close.any() and len(known):
            key = k * n + m[close]
            pos = np.minimum(np.searchsorted(known, key), len(known) - 1)
            look = close.copy()
            look[close] = known[pos] != key
        else:
            look = close
        if look.any():
            mm = m[look]
            close[look] = pairs_alike([thumbs[k]] * len(mm), thumbs[mm], [details[k]] * len(mm), details[mm],
                                      colour_max, detail_max,
                                      None if alphas is None else [alphas[k]] * len(mm),
                                      None if alphas is None else alphas[mm], alpha_max)
        return same | close

    return fn


# --- the detail thumbnail (32x32 Lab, ``quality.detail_thumb``): crops and local differences -------

DETAIL_SIDE = 32  # quality.DETAIL_SIDE (a unit test pins the two)
CROP_TOLERANCE = 0.04  # per side: a copy cropped by up to this much is compared with the matching part
DETAIL_WINDOW = 6      # cells a side (of 32) of the window the detail distance averages: ~ a fifth of the image
DETAIL_CHROMA = 2.0    # a and b differences count twice L's
_BATCH = 2048          # pairs per numpy step (~25 MB per (n, 32, 32, 3) float32 array)
# Colour distance as they are beyond which a pair is not looked at further: no zoom brought a
# transformed copy of the benchmark from farther than 0.51 to within the 0.2 limit.
_UNRELATED = 0.8


def _uint8_rows(x, *shape: int) -> np.ndarray:
    """An (n, k) uint8 array or n bytes objects of k bytes each -> (n, *shape) float32."""
    if not (isinstance(x, np.ndarray) and x.dtype == np.uint8):
        x = np.frombuffer(b"".join(bytes(v) for v in x), np.uint8)
    return x.reshape(-1, *shape).astype(np.float32)


def _detail_rows(x) -> np.ndarray:
    """(n, 3072) uint8 or n bytes of ``quality.detail_thumb`` -> (n, 32, 32, 3) float32 Lab."""
    return _uint8_rows(x, DETAIL_SIDE, DETAIL_SIDE, 3)


@functools.cache
def _zoom_taps(side: int, crop: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, w): resampling the central ``1 - 2 crop`` of an axis of ``side`` cells onto all
    ``side`` cells is ``x[lo] (1 - w) + x[hi] w`` (linear interpolation between cell centres; the
    cells shrink by only 2 crop, so this is close to the area average a resize of the cropped
    image would give)."""
    pos = crop * side + (np.arange(side) + 0.5) * (1 - 2 * crop) - 0.5
    lo = np.floor(pos).astype(np.int64)
    w = (pos - lo).astype(np.float32)
    return np.clip(lo, 0, side - 1), np.clip(lo + 1, 0, side - 1), w


def _zoom(t: np.ndarray, crop: float = CROP_TOLERANCE) -> np.ndarray:
    """(n, s, s, 3) -> the central part of each, resampled to (n, s, s, 3): what a crop of ``crop``
    on every side would have produced."""
    lo, hi, w = _zoom_taps(t.shape[1], crop)
    rows = t[:, lo] * (1 - w)[None, :, None, None] + t[:, hi] * w[None, :, None, None]
    return rows[:, :, lo] * (1 - w)[None, None, :, None] + rows[:, :, hi] * w[None, None, :, None]


def _pool16(t: np.ndarray) -> np.ndarray:
    """(n, 32, 32, 3) -> (n, 16, 16, 3): 2x2 means (the 16x16 colour thumbnail's cells)."""
    return (t[:, 0::2, 0::2] + t[:, 1::2, 0::2] + t[:, 0::2, 1::2] + t[:, 1::2, 1::2]) * 0.25


_ALIGNMENTS = ((None, 0.0), ("a", CROP_TOLERANCE / 2), ("b", CROP_TOLERANCE / 2), ("a", CROP_TOLERANCE),
               ("b", CROP_TOLERANCE))


def _aligned(a: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The pair under alignment ``k`` of ``_ALIGNMENTS``: as they are, a's centre zoomed (b is a
    crop of a) or b's (a is a crop of b), by half and by the whole crop tolerance."""
    which, crop = _ALIGNMENTS[k]
    return (_zoom(a, crop) if which == "a" else a), (_zoom(b, crop) if which == "b" else b)


def _match_histogram(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a with its L values replaced by b's, rank for rank (the monotone tone curve that maps a's
    L distribution onto b's: brightening that saturates a white background, gamma, contrast)."""
    n = len(a)
    la, lb = a[..., 0].reshape(n, -1), b[..., 0].reshape(n, -1)
    out = a.copy()
    mapped = np.empty_like(la)
    np.put_along_axis(mapped, np.argsort(la, axis=1, kind="stable"), np.sort(lb, axis=1), axis=1)
    out[..., 0] = mapped.reshape(a.shape[:-1])
    return out


def _match_chroma(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a with its colourfulness (a and b away from neutral) scaled by the least-squares factor
    onto b's, kept within 0.7..1.4: brightening or a tone curve desaturates colours evenly; a
    change of hue (a yellow folder against a brown one) is not a scale and stays a difference."""
    n = len(a)
    ca, cb = a[..., 1:].reshape(n, -1) - 128.0, b[..., 1:].reshape(n, -1) - 128.0
    k = np.clip((ca * cb).sum(axis=1) / ((ca * ca).sum(axis=1) + 1.0), 0.7, 1.4)
    out = a.copy()
    out[..., 1:] = (a[..., 1:] - 128.0) * k[:, None, None, None] + 128.0
    return out


def _cell_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, h, w, 3) x2 -> (n, h, w): |dL| + DETAIL_CHROMA (|da| + |db|) per cell."""
    d = np.abs(a - b)
    return d[..., 0] + DETAIL_CHROMA * (d[..., 1] + d[..., 2])


def _tolerant(a: np.ndarray, b: np.ndarray, diff=_cell_diff) -> np.ndarray:
    """(n, m, m, ...) x2 -> (n, m - 2, m - 2): per inner cell of a, the smallest ``diff`` to b's
    cell there or any of its 8 neighbours (an edge moved by a cell or softened by blur finds its
    match next door; an emblem b does not have finds none). ``diff``: Lab cells by default."""
    m = a.shape[1]
    core = a[:, 1:m - 1, 1:m - 1]
    best = None
    for dy in range(3):
        for dx in range(3):
            d = diff(core, b[:, dy:dy + m - 2, dx:dx + m - 2])
            best = d if best is None else np.minimum(best, d)
    return best


def _worst_window(d: np.ndarray, win: int) -> np.ndarray:
    """(n, h, w) -> (n,): the largest mean of d over a win x win window."""
    c = np.pad(d.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
    s = c[:, win:, win:] - c[:, :-win, win:] - c[:, win:, :-win] + c[:, :-win, :-win]
    return s.reshape(len(d), -1).max(axis=1) / (win * win)


def _look_one(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`look_distances` of one batch of (n, 32, 32, 3) float Lab pairs. Colour and the
    alignments are found on 16x16 cells pooled from the zoomed 32x32 ones (zooming the pooled
    cells instead costs textured photos' 4 % crops up to 0.3 of colour distance); the detail is
    measured on 32x32 cells, both ways (a onto b at a's best alignment, b onto a at b's: the
    larger counts, so the distance is symmetric). Pairs farther than ``_UNRELATED`` in colour as
    they are (chance pHash collisions of unrelated images) stop there: detail infinite."""
    n = len(a)
    colour = np.full(n, np.inf, np.float32)
    detail = np.full(n, np.inf, np.float32)
    best = [np.full(n, -np.inf, np.float32), np.full(n, -np.inf, np.float32)]
    pick = [np.zeros(n, np.int64), np.zeros(n, np.int64)]
    rows = np.arange(n)
    for k in range(len(_ALIGNMENTS)):
        va, vb = _aligned(a[rows], b[rows], k)
        ca, cb = _centred_cells(_pool16(va)), _centred_cells(_pool16(vb))
        cos = (_cosines(ca, cb), _cosines(cb, ca))
        colour[rows] = np.minimum(colour[rows], np.maximum(1.0 - cos[0].max(axis=1), 1.0 - cos[1].max(axis=1)))
        for way in (0, 1):
            top = cos[way].max(axis=1)
            better = top > best[way][rows]
            best[way][rows[better]] = top[better]
            pick[way][rows[better]] = k * 9 + cos[way].argmax(axis=1)[better]
        if k == 0:
            rows = rows[colour[rows] <= _UNRELATED]
            if not len(rows):
                return colour, detail
    detail[rows] = np.maximum(_detail_at(a[rows], b[rows], pick[0][rows], False),
                              _detail_at(a[rows], b[rows], pick[1][rows], True))
    return colour, detail


def _detail_at(a: np.ndarray, b: np.ndarray, pick: np.ndarray, reverse: bool) -> np.ndarray:
    """The detail distance of each pair at its picked alignment (``k * 9 + shift``): the first
    image's inner 28x28 cells (L and colourfulness matched to the other's) against the other's
    28x28 window at the shift; ``reverse``: b is the first image."""
    detail = np.empty(len(a), np.float32)
    side, inner = DETAIL_SIDE, DETAIL_SIDE - 4
    for choice in np.unique(pick):
        rows = np.flatnonzero(pick == choice)
        va, vb = _aligned(a[rows], b[rows], int(choice) // 9)
        if reverse:
            va, vb = vb, va
        sh = int(choice) % 9
        dy, dx = 2 * (sh // 3), 2 * (sh % 3)  # the 16-cell shift, in 32-cell units
        bb = vb[:, dy:dy + inner, dx:dx + inner]
        aa = _match_chroma(_match_histogram(va[:, 2:side - 2, 2:side - 2], bb), bb)
        d = np.maximum(_tolerant(aa, bb), _tolerant(bb, aa))
        detail[rows] = _worst_window(d, DETAIL_WINDOW)
    return detail


def look_distances(a, b) -> tuple[np.ndarray, np.ndarray]:
    """How unlike two images look beyond their luminance hashes, pair by pair, from their 32x32
    detail thumbnails: (colour, detail).

    The pair is compared as it is and with either one's centre zoomed by 2 % and 4 % a side (a
    cropped copy), each shifted by up to one 16-grid cell. *colour* is :func:`colour_distance` of
    the 2x2-pooled cells, the smallest over those alignments (0..2; a 4 % crop scales a 16-cell
    grid by more than the one-cell shift allows, which on finely textured photos alone costs
    0.3-0.5). *detail* is taken at the alignment where a's cells correlate best with b's: a's L
    mapped onto b's rank for rank (brightening, gamma, contrast) and its colourfulness scaled to
    b's (0.7..1.4), every cell compared with the other image's cell there and its eight neighbours
    (the smallest difference counts, both ways: moved or blurred edges cost little), and the
    worst 6x6-cell window's mean is the distance (|dL| + 2 |da| + 2 |db|, ~0..300). An emblem, a
    changed expression or a differently coloured fill raise one window; re-encoding, resizing,
    blur, gamma, brightening and small crops do not.

    Args:
        a, b: (n, 3072) uint8 arrays (or n bytes objects) of ``quality.detail_thumb``.
    """
    ta, tb = _detail_rows(a), _detail_rows(b)
    parts = [_look_one(ta[s:s + _BATCH], tb[s:s + _BATCH]) for s in range(0, len(ta), _BATCH)]
    if not parts:
        return np.empty(0, np.float32), np.empty(0, np.float32)
    return np.concatenate([c for c, _ in parts]), np.concatenate([d for _, d in parts])


# --- the alpha thumbnail (two 32x32 maps, ``quality.alpha_thumb``): the shape of the transparency --

ALPHA_SIDE = 32  # quality.ALPHA_SIDE (this module does not import OpenCV; a unit test pins the two)
ALPHA_WINDOW = 4  # cells a side (of 32) of the window the alpha distance averages: an eighth of the image


def _alpha_rows(x) -> np.ndarray:
    """n bytes (or an (n, 2048) uint8 array) of ``quality.alpha_thumb`` -> (n, 2, 32, 32) float32
    in 0..1: coverage, then silhouette."""
    return _uint8_rows(x, 2, ALPHA_SIDE, ALPHA_SIDE) / 255.0


def _abs_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b)


def _map_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 32, 32) x2 maps -> (n,): over the five alignments of the detail check (as they are,
    either one's centre zoomed 2 % or 4 %), the smallest of: the worst 4x4-cell window's mean of
    the neighbour-tolerant difference, the larger of its two ways (0..1)."""
    best = np.full(len(a), np.inf, np.float32)
    for k in range(len(_ALIGNMENTS)):
        va, vb = _aligned(a[..., None], b[..., None], k)
        va, vb = va[..., 0], vb[..., 0]
        d = np.maximum(_worst_window(_tolerant(va, vb, _abs_diff), ALPHA_WINDOW),
                       _worst_window(_tolerant(vb, va, _abs_diff), ALPHA_WINDOW))
        best = np.minimum(best, d)
    return best


def alpha_distance(a, b, limit: float | None = None) -> np.ndarray:
    """How unlike the shapes of two images' transparency are, pair by pair (0 = same, up to 1).

    ``process`` composites transparency onto a background, so two icons that differ in a faint
    or light part (a network symbol under a folder, rain drops under a cloud) can look alike in
    the colour and detail thumbnails; their alpha channels still differ there. Each of the two
    maps of ``quality.alpha_thumb`` is compared as the detail check compares Lab cells: at the
    five crop alignments, every inner cell against the other map's cell there and its eight
    neighbours (the smallest difference counts, both ways), the worst 4x4-cell window's mean.
    The distance is the smaller of the coverage's and the silhouette's: true copies (resized,
    blurred, cropped, alpha cut to one bit) keep at least one of them close (0.16 at most over
    1,196 Oxygen icons x 16 transformations, 0.20 for one-bit alpha copies), while a shape one
    image has and the other does not moves both. What it does not see, because the silhouette
    counts only pixels at least half opaque: a difference that stays below half opacity (a part
    drawn at alpha 100, or the same drawing made translucent as a "disabled" variant; such a
    variant is usually greyed too, which the colour check sees).

    Args:
        a, b: n bytes objects (or (n, 2048) uint8 arrays) of ``quality.alpha_thumb``.
        limit: the silhouette is compared only for pairs whose coverage distance exceeds it
            (the smaller of the two can exceed ``limit`` only if both do); for the others the
            coverage distance is returned. None: both for every pair.
    """
    ta, tb = _alpha_rows(a), _alpha_rows(b)
    out = np.empty(len(ta), np.float32)
    for s in range(0, len(ta), _BATCH):
        d = _map_distance(ta[s:s + _BATCH, 0], tb[s:s + _BATCH, 0])
        far = np.arange(len(d)) if limit is None else np.flatnonzero(d > limit)
        if len(far):
            d[far] = np.minimum(d[far], _map_distance(ta[s + far, 1], tb[s + far, 1]))
        out[s:s + len(d)] = d
    return out


def pairs_alike(thumbs_a, thumbs_b, details_a, details_b, colour_max: float, detail_max: float,
                alphas_a=None, alphas_b=None, alpha_max: float = 1.0) -> np.ndarray:
    """Which pairs of images look alike beyond their hashes, row by row (bool).

    Both with a detail thumbnail: :func:`look_distances`' colour within ``colour_max`` and its
    detail within ``detail_max``. Otherwise (an image under 32 px, or processed before detail
    thumbnails existed) both with a colour thumbnail: :func:`colour_distance` within
    ``colour_max``. Otherwise not checked (True). Then, for pairs still alike where both images
    have an alpha thumbnail, :func:`alpha_distance` within ``alpha_max`` (at 1 or more, never
    checked: the distance is at most 1). An image without one (opaque, or processed before the
    column existed) is not checked on alpha: its transparency is unknown, not different.

    Args:
        thumbs_a, thumbs_b: per pair the 16x16 colour thumbnails (bytes or None).
        details_a, details_b: per pair the 32x32 detail thumbnails (bytes or None).
        alphas_a, alphas_b: per pair the alpha thumbnails (bytes or None); None: none at all.
    """
    def present(x) -> np.ndarray:
        return np.array([v is not None for v in x], bool)

    ok = np.ones(len(thumbs_a), bool)
    detailed = present(details_a) & present(details_b)
    if detailed.any():
        idx = np.flatnonzero(detailed)
        colour, detail = look_distances([details_a[i] for i in idx], [details_b[i] for i in idx])
        ok[idx] = (colour <= colour_max) & (detail <= detail_max)
    coloured = ~detailed & present(thumbs_a) & present(thumbs_b)
    if coloured.any():
        ok[coloured] = colour_distance([v for v, k in zip(thumbs_a, coloured) if k],
                                       [v for v, k in zip(thumbs_b, coloured) if k]) <= colour_max
    if alpha_max < 1.0 and alphas_a is not None and alphas_b is not None:
        idx = np.flatnonzero(ok & present(alphas_a) & present(alphas_b))
        if len(idx):
            far = alpha_distance([alphas_a[i] for i in idx], [alphas_b[i] for i in idx], alpha_max) > alpha_max
            ok[idx[far]] = False
    return ok
