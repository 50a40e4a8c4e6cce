"""Image files made in the tests, with known content (shared by unit and Spark tests)."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from ptdm_spark.imaging.cv import cv2


def encode(arr: np.ndarray, ext: str = ".png") -> bytes:
    """Encode an RGB (or grey) array with OpenCV."""
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(arr))
    assert ok
    return buf.tobytes()


def photo(seed: int = 0, h: int = 64, w: int = 96) -> np.ndarray:
    """A smooth, textured RGB image (different per seed) that survives JPEG well."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(0.02, 0.2, 3)
        img[:, :, c] = 127 + 100 * np.sin(fx * xx + ph * 10) * np.cos(fy * yy)
    return np.clip(img, 0, 255).astype(np.uint8)


def pil_bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims width x height pixels (a pixel bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return pil_bytes(Image.fromarray(rgb), "JPEG", quality=95, exif=exif.tobytes())


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 12), (255, 0, 0)), Image.new("RGB", (20, 12), (0, 0, 255))]
    return pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def palette_png_with_transparency() -> bytes:
    img = Image.new("P", (16, 16), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    for x in range(8, 16):
        for y in range(16):
            img.putpixel((x, y), 1)
    return pil_bytes(img, "PNG", transparency=0)
