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
    aspect_ratio (width / height), channel_spread (mean max-min over R, G, B; 0 for grey).

    OpenCV reductions throughout: numpy's per-pixel reductions over the channel axis cost ten
    times more on a 512-pixel image.
    """
    h, w = rgb.shape[:2]
    small, grey = working_grey(rgb)
    mean, std = cv2.meanStdDev(grey)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_64F))
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel()
    p = hist[hist > 0] / grey.size
    r, g, b = cv2.split(small)
    spread = cv2.subtract(cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b))
    return {
        "blur": float(lap_std[0, 0] ** 2),
        "brightness": float(mean[0, 0] / 255.0),
        "contrast": float(std[0, 0] / 255.0),
        "entropy": float(-(p * np.log2(p)).sum()) + 0.0,
        "aspect_ratio": float(w / h),
        "channel_spread": float(cv2.mean(spread)[0]),
    }


def _bits_to_int64(bits: np.ndarray) -> int:
    """64 booleans, most significant first -> a signed 64-bit integer (fits a BIGINT)."""
    return int.from_bytes(np.packbits(bits.ravel()[:64].astype(np.uint8)).tobytes(), "big", signed=True)


def phash(grey: np.ndarray) -> int:
    """64-bit DCT hash: the 8x8 lowest frequencies of a 32x32 thumbnail against their median."""
    thumb = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(thumb)[:8, :8].ravel()
    ordered = np.sort(low)
    return _bits_to_int64(low > (ordered[31] + ordered[32]) / 2)  # the median of 64 values


INNER_CROP = 0.04  # per side: the inner pHash is of the image without this much of every edge


def phash_inner(grey: np.ndarray) -> int:
    """:func:`phash` of the image's central part (``INNER_CROP`` off every side): a copy cropped
    by that much has this as its whole pHash (the crop shifts and scales the 32x32 thumbnail by
    more than 12 bits for a third of photos), so near-duplicate search can match whole against
    inner pHashes."""
    h, w = grey.shape[:2]
    dy, dx = round(h * INNER_CROP), round(w * INNER_CROP)
    return phash(grey[dy:h - dy, dx:w - dx])


def dhash(grey: np.ndarray) -> int:
    """64-bit difference hash: is each pixel of a 9x8 thumbnail brighter than its right neighbour."""
    thumb = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    return _bits_to_int64(thumb[:, :-1] > thumb[:, 1:])



THUMB_SIDE = 16  # the colour thumbnail is THUMB_SIDE x THUMB_SIDE cells of CIE Lab


def colour_thumb(rgb: np.ndarray) -> bytes:
    """A 16x16 CIE Lab thumbnail (OpenCV's 8-bit Lab: L scaled to 0..255, a and b offset by 128),
    768 bytes, cells row by row, L a b per cell: what a near-duplicate pair is checked on besides
    its luminance hashes (see :func:`ptdm_spark.imaging.hashing.colour_distance`). 16 cells a side
    see an emblem of a quarter of the image, which pHash's 8x8 lowest frequencies do not."""
    small, _ = working_grey(rgb)
    thumb = cv2.resize(small, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(thumb, cv2.COLOR_RGB2Lab).tobytes()


DETAIL_SIDE = 32  # the detail thumbnail is DETAIL_SIDE x DETAIL_SIDE cells of CIE Lab


def detail_thumb(rgb: np.ndarray) -> bytes | None:
    """A 32x32 CIE Lab thumbnail (OpenCV's 8-bit Lab), 3,072 bytes, cells row by row: what a
    near-duplicate pair is checked on locally (:func:`ptdm_spark.imaging.hashing.look_distances`):
    an emblem, a face's expression or a folder's colour covers a few of its cells, where the 16x16
    colour thumbnail's one global score dilutes it. None for images under 32 pixels a side (not
    searched for near duplicates; a thumbnail larger than the image says nothing more)."""
    if min(rgb.shape[:2]) < DETAIL_SIDE:
        return None
    small, _ = working_grey(rgb)
    thumb = cv2.resize(small, (DETAIL_SIDE, DETAIL_SIDE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(thumb, cv2.COLOR_RGB2Lab).tobytes()


ALPHA_SIDE = 32      # the alpha thumbnail is two ALPHA_SIDE x ALPHA_SIDE maps
ALPHA_OPAQUE = 250   # an alpha channel whose every value is at least this says nothing: no map
ALPHA_SOLID = 128    # the silhouette map counts pixels at least this opaque


def alpha_thumb(alpha: np.ndarray | None) -> bytes | None:
    """Two 32x32 maps of an image's transparency (2,048 bytes, each row by row, as x * 255
    rounded): its coverage (the area mean of alpha / 255) and its silhouette (the area share of
    pixels with alpha >= 128), both resized from full resolution with INTER_AREA.

    ``process`` composites transparency onto a background, so a faint part of a drawing (a
    network symbol under a folder, rain under a cloud) barely shows in the colour and detail
    thumbnails, but stands out in the alpha channel: what
    :func:`ptdm_spark.imaging.hashing.alpha_distance` compares. None without an alpha channel
    (``alpha`` None, see :func:`ptdm_spark.imaging.normalize.alpha8`) or with one that is
    opaque everywhere (every value >= 250): such an image is not checked on its alpha.

    Args:
        alpha: the 8-bit alpha plane (h, w) of the decoded image, or None.
    """
    if alpha is None or alpha.size == 0 or int(alpha.min()) >= ALPHA_OPAQUE:
        return None
    side = (ALPHA_SIDE, ALPHA_SIDE)
    cover = cv2.resize(alpha.astype(np.float32) / 255.0, side, interpolation=cv2.INTER_AREA)
    solid = cv2.resize((alpha >= ALPHA_SOLID).astype(np.float32), side, interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(np.stack([cover, solid]) * 255.0), 0, 255).astype(np.uint8).tobytes()
