"""Quality scores and perceptual hashes, as plain numbers (score now, decide later).

Scores are computed on the upright 8-bit RGB image, shrunk to at most ``WORK_SIDE`` pixels per
side so that a 50-megapixel photo costs about what a 512-pixel one does; blur variance is
therefore comparable across image sizes only at that working resolution.
"""

from __future__ import annotations

import numpy as np

from ptdm_spark.imaging.cv import cv2

WORK_SIDE = 512


def working_grey(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shrunk RGB, its grey version) used by every score."""
    h, w = rgb.shape[:2]
    scale = WORK_SIDE / max(h, w)
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return rgb, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def scores(rgb: np.ndarray) -> dict[str, float]:
    """blur (variance of the Laplacian), brightness and contrast (0..1), entropy (bits),
    aspect_ratio (width / height), channel_spread (mean max-min over R, G, B; 0 for grey)."""
    h, w = rgb.shape[:2]
    small, grey = working_grey(rgb)
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / grey.size
    spread = small.max(axis=2).astype(np.int16) - small.min(axis=2).astype(np.int16)
    return {
        "blur": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
        "brightness": float(grey.mean() / 255.0),
        "contrast": float(grey.std() / 255.0),
        "entropy": float(-(p * np.log2(p)).sum()) + 0.0,
        "aspect_ratio": float(w / h),
        "channel_spread": float(spread.mean()),
    }


def _bits_to_int64(bits: np.ndarray) -> int:
    value = 0
    for b in bits.ravel()[:64]:
        value = (value << 1) | int(b)
    return value - (1 << 64) if value >= (1 << 63) else value  # two's complement: fits a BIGINT


def phash(grey: np.ndarray) -> int:
    """64-bit DCT hash: the 8x8 lowest frequencies of a 32x32 thumbnail against their median."""
    thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(thumb)[:8, :8]
    return _bits_to_int64(low > np.median(low))


def dhash(grey: np.ndarray) -> int:
    """64-bit difference hash: is each pixel of a 9x8 thumbnail brighter than its right neighbour."""
    thumb = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return _bits_to_int64(thumb[:, :-1] > thumb[:, 1:])


def hamming(a: int, b: int) -> int:
    return bin((a ^ b) & 0xFFFFFFFFFFFFFFFF).count("1")
