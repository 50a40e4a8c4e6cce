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


THUMB_SIDE = 16  # cells a side of the colour thumbnail (``quality.colour_thumb``: 16 x 16 x Lab, 768 bytes)
CHROMA_WEIGHT = 4.0  # a and b count four times L: a red and a blue folder of one shape must fall apart


def _centred(thumbs: np.ndarray) -> np.ndarray:
    """(n, 768) uint8 Lab thumbnails -> (n, 16, 16, 3) float: L minus its mean (brightness and
    gamma shift it), a and b minus their neutral 128, weighted by ``CHROMA_WEIGHT``."""
    t = np.asarray(thumbs, np.uint8).reshape(-1, THUMB_SIDE, THUMB_SIDE, 3).astype(np.float32)
    t[..., 0] -= t[..., 0].mean(axis=(1, 2), keepdims=True)
    t[..., 1:] = (t[..., 1:] - 128.0) * CHROMA_WEIGHT
    return t


def _one_way(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - the best cosine of a's inner 14x14 cells against b's cells shifted by -1..1 cell."""
    s = THUMB_SIDE
    inner = a[:, 1:s - 1, 1:s - 1].reshape(len(a), -1)
    inner = inner / (np.linalg.norm(inner, axis=1, keepdims=True) + 1.0)
    best = np.full(len(a), -1.0, np.float32)
    for dy in range(3):
        for dx in range(3):
            w = b[:, dy:dy + s - 2, dx:dx + s - 2].reshape(len(b), -1)
            w = w / (np.linalg.norm(w, axis=1, keepdims=True) + 1.0)
            best = np.maximum(best, (inner * w).sum(axis=1))
    return 1.0 - best


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


def near_kept(phash: np.ndarray, thumbs: np.ndarray, has_thumb: np.ndarray, pixel: np.ndarray,
              member_max: int, colour_max: float):
    """The bound of a near-duplicate group, for :func:`ptdm_spark.imaging.graph.bounded_groups`:
    a node may join the group kept by ``k`` when it has ``k``'s pixels, or its pHash is within
    ``member_max`` bits of ``k``'s and its colour thumbnail within ``colour_max`` of ``k``'s
    (not checked when either has no thumbnail: images processed before thumbnails existed).

    Args: per node: phash (int64), thumbs ((n, 768) uint8; any bytes where has_thumb is False),
    has_thumb (bool), pixel (pixel SHA-256 strings).
    """
    u = np.asarray(phash, np.int64).view(np.uint64)

    def fn(k: int, m: np.ndarray) -> np.ndarray:
        close = np.bitwise_count(u[m] ^ u[k]) <= member_max
        colour = np.ones(len(m), bool)
        both = has_thumb[m] & has_thumb[k]
        if both.any():
            mm = m[both]
            colour[both] = colour_distance(np.repeat(thumbs[k:k + 1], len(mm), 0), thumbs[mm]) <= colour_max
        return (pixel[m] == pixel[k]) | (close & colour)

    return fn
