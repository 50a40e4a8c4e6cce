"""Per-image pieces of ``ptdm analyze``: per-channel pixel sums (for exact dataset-wide channel
means and stds) and small thumbnails for the report. numpy/OpenCV only; never raises for bad data.
"""

from __future__ import annotations

import numpy as np

from ptdm_spark.imaging.cv import cv2
from ptdm_spark.imaging.decode import Limits, Rejected, decode


def _pixels(data: bytes) -> np.ndarray | None:
    """The decoded pixels as stored (grey, BGR or BGRA; 8 or 16 bit), or None."""
    if not data:
        return None
    try:
        px = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if px is None or px.size == 0:
        return None
    return px


def rgb01(data: bytes) -> np.ndarray | None:
    """The image's pixels as float64 RGB in 0..1 (grey images become R = G = B, alpha dropped),
    as a trainer's ``ToTensor`` after ``convert("RGB")`` sees them; None when it does not decode."""
    px = _pixels(data)
    if px is None:
        return None
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(px.dtype, 1.0)
    if px.ndim == 2:
        px = np.repeat(px[:, :, None], 3, axis=2)
    elif px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    else:
        px = px[:, :, 2::-1]  # BGR(A) -> RGB
    return px.astype(np.float64) / scale


def channel_sums(data: bytes) -> tuple[int, np.ndarray, np.ndarray] | None:
    """(pixels, per-channel sum, per-channel sum of squares) of the RGB values in 0..1 that
    :func:`rgb01` gives, or None.

    Summed over many images these give the exact mean and std of every channel over all pixels
    (``mean = S / n``, ``std = sqrt(Q / n - mean^2)``), with no sample. Integer pixels are summed
    as integers (exact) and scaled once, without a float copy of the image.
    """
    px = _pixels(data)
    if px is None:
        return None
    if px.dtype not in (np.uint8, np.uint16):
        return _float_sums(rgb01(data))
    if px.ndim == 3 and px.shape[2] >= 3:
        px = px[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    return array_sums(px)


def array_sums(px: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """:func:`channel_sums` of pixels already decoded: grey (``h x w`` or ``h x w x 1``) or RGB
    ``h x w x 3``, 8 or 16 bit. ``process`` calls it on the normalized pixels it has just encoded
    losslessly, so that ``ptdm analyze`` need not decode them again."""
    scale = 255.0 if px.dtype == np.uint8 else 65535.0
    h, w = px.shape[:2]
    c = 1 if px.ndim == 2 else px.shape[2]
    s, q = np.zeros(c, np.int64), np.zeros(c, np.int64)
    rows = max(1, (1 << 20) // max(1, w))  # integer copies of a megapixel at a time, not of the image
    for top in range(0, h, rows):
        wide = px[top:top + rows].reshape(-1, c).astype(np.int64)
        s += wide.sum(axis=0)
        q += np.einsum("ij,ij->j", wide, wide)
    if c == 1:  # grey: R = G = B
        s, q = np.repeat(s, 3), np.repeat(q, 3)
    return h * w, s / scale, q / (scale * scale)


def sums_list(got: tuple[int, np.ndarray, np.ndarray] | None) -> list[float] | None:
    """:func:`channel_sums` as the ``pixel_sums`` column stores it: [pixels, sum R, G, B, sum of
    squares R, G, B], or None."""
    if got is None:
        return None
    n, s, q = got
    return [float(n), *map(float, s), *map(float, q)]


def _float_sums(px: np.ndarray | None) -> tuple[int, np.ndarray, np.ndarray] | None:
    if px is None:
        return None
    flat = px.reshape(-1, 3)
    return flat.shape[0], flat.sum(axis=0), np.square(flat).sum(axis=0)


def mean_std(n: float, s: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std from the sums of :func:`channel_sums`."""
    mean = np.asarray(s, np.float64) / n
    var = np.maximum(np.asarray(q, np.float64) / n - mean * mean, 0.0)
    return mean, np.sqrt(var)


THUMB_LIMITS = Limits(max_pixels=1 << 26, max_side=1 << 15, min_side=1)


def thumbnail(data: bytes, side: int) -> bytes | None:
    """A PNG of at most ``side`` pixels on its longest side, or None when the bytes do not decode
    (a reject without pixels). Pixel bombs are refused by the header check before decoding."""
    try:
        px = decode(bytes(data or b""), THUMB_LIMITS).pixels
    except (Rejected, cv2.error, ValueError):
        return None
    if px.dtype != np.uint8:
        px = (px / 257).astype(np.uint8) if px.dtype == np.uint16 else np.clip(px * 255, 0, 255).astype(np.uint8)
    h, w = px.shape[:2]
    f = side / max(h, w)
    if f < 1:
        px = cv2.resize(px, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
    elif f >= 2:  # tiny images (28x28) are scaled up by whole pixels, so they stay sharp
        k = int(f)
        px = cv2.resize(px, (w * k, h * k), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", px)
    return buf.tobytes() if ok else None
