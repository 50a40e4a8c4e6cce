"""Decode bytes into pixels: validation first, then OpenCV, then EXIF orientation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ptdm_spark.imaging import reasons, sniff
from ptdm_spark.imaging.cv import cv2


class Rejected(Exception):
    """Internal to ``imaging``: carries a reason code; converted to a value by ``process_image``."""

    def __init__(self, reason: str, detail: str, fmt: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.format = reason, detail, fmt


@dataclass(frozen=True)
class Decoded:
    pixels: np.ndarray  # as decoded (BGR / BGRA / grey), orientation applied
    format: str
    width: int  # after orientation
    height: int
    channels: int
    bit_depth: int
    orientation: int


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_side: int
    min_side: int


def _check_size(width: int, height: int, limits: Limits, fmt: str | None, when: str) -> None:
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise Rejected(
            reasons.TOO_LARGE,
            f"{width}x{height} pixels ({when}) exceeds the limit of {limits.max_pixels} pixels "
            f"or {limits.max_side} per side",
            fmt,
        )
    if min(width, height) < limits.min_side:
        raise Rejected(reasons.TOO_SMALL, f"{width}x{height} pixels: a side is below {limits.min_side}", fmt)


def decode(data: bytes, limits: Limits) -> Decoded:
    """Validate and decode ``data``; the format is told by content, never by a file name.

    The header is read first (pixel bombs stop here, and truncation is found: a cut JPEG still
    decodes into grey-filled pixels), then the decoder decides: anything it reads is an image.
    When it fails, the header's finding (or the decoder's message) names the reason.

    Raises:
        Rejected: with one of the reason codes of :mod:`ptdm_spark.imaging.reasons`.
    """
    if not data:
        raise Rejected(reasons.EMPTY, "the file is empty (0 bytes)")
    header = sniff.read_header(data)
    fmt = header.format
    if fmt is not None and fmt not in sniff.DECODABLE:
        raise Rejected(reasons.UNSUPPORTED, f"{fmt} images are not supported", fmt)
    if header.problem and header.problem.startswith("truncated"):
        raise Rejected(reasons.TRUNCATED, f"{fmt}: {header.problem.partition(': ')[2]}", fmt)
    if header.width and header.height:  # 0 (or unparsed): the decoder decides
        _check_size(header.width, header.height, limits, fmt, "from the header")

    pixels, error = _decode_pixels(data, fmt)
    if pixels is None or pixels.size == 0:
        if fmt is None:
            raise Rejected(reasons.NOT_IMAGE, f"not a recognised image format (starts with {data[:8]!r})")
        if header.hint:
            kind, _, detail = header.hint.partition(": ")
            raise Rejected(reasons.TRUNCATED if kind == "truncated" else reasons.CORRUPT, f"{fmt}: {detail}", fmt)
        raise Rejected(reasons.CORRUPT, f"{fmt}: {error}", fmt)
    fmt = fmt or "other"

    orientation, pixels = _upright(data, fmt, pixels)
    height, width = pixels.shape[:2]
    _check_size(width, height, limits, fmt, "decoded")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}.get(pixels.dtype)
    if bit_depth is None:
        raise Rejected(reasons.UNSUPPORTED, f"{fmt}: sample type {pixels.dtype} is not supported", fmt)
    return Decoded(pixels, fmt, width, height, channels, bit_depth, orientation)


def _decode_pixels(data: bytes, fmt: str | None) -> tuple[np.ndarray | None, str]:
    """(pixels in OpenCV's channel order, or None; the decoder's error text)."""
    if fmt == "heif":
        return _decode_heif(data)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        return None, str(exc).strip().splitlines()[-1][:200]
    return pixels, "the decoder returned no image"


def _decode_heif(data: bytes) -> tuple[np.ndarray | None, str]:
    """HEIC/HEIF through libheif (pillow-heif), which applies the file's irot/imir itself."""
    try:
        import pillow_heif
    except ImportError:  # pragma: no cover - a declared dependency
        return None, "HEIF needs the pillow-heif package"
    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=False)
        pixels = np.asarray(heif)
    except Exception as exc:  # noqa: BLE001 - libheif raises its own error types; the reason is the value
        return None, f"{type(exc).__name__}: {exc}"[:200]
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = pixels[:, :, ::-1]
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, [2, 1, 0, 3]]
    if pixels.dtype == np.uint16 and heif.info.get("bit_depth", 16) < 16:  # 10/12-bit samples, low bits
        pixels = pixels << (16 - heif.info["bit_depth"])
    return np.ascontiguousarray(pixels), ""


def _upright(data: bytes, fmt: str, pixels: np.ndarray) -> tuple[int, np.ndarray]:
    """(orientation the file declared, pixels turned upright).

    OpenCV's TIFF reader and libheif already turn their images; for JPEG, PNG and WebP the EXIF
    orientation and for AVIF the irot/imir properties are applied here."""
    if fmt in ("heif", "avif"):
        orientation = sniff.HEIF_TO_EXIF.get(sniff.heif_transform(data), 1)
        return orientation, (pixels if fmt == "heif" else apply_orientation(pixels, orientation))
    orientation = sniff.exif_orientation(data)
    if fmt == "tiff":
        return orientation, pixels
    return orientation, apply_orientation(pixels, orientation)


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn pixels stored with EXIF ``orientation`` (1..8) upright."""
    if orientation == 2:
        out = pixels[:, ::-1]
    elif orientation == 3:
        out = pixels[::-1, ::-1]
    elif orientation == 4:
        out = pixels[::-1]
    elif orientation == 5:
        out = pixels.swapaxes(0, 1)
    elif orientation == 6:
        out = np.rot90(pixels, -1)
    elif orientation == 7:
        out = pixels.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        out = np.rot90(pixels, 1)
    else:
        return pixels
    return np.ascontiguousarray(out)
