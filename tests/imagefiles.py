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


def folder_icon(fill=(235, 190, 40), emblem=False) -> np.ndarray:
    """A folder-like drawing on white (RGB, 128 px): a filled body with an outline and a tab;
    ``emblem`` adds a dark badge over a corner (about a fifth of the side)."""
    img = np.full((128, 128, 3), 255, np.uint8)
    cv2.rectangle(img, (14, 22), (60, 40), tuple(int(c * 0.8) for c in fill), -1)
    cv2.rectangle(img, (10, 34), (118, 108), fill, -1)
    cv2.rectangle(img, (10, 34), (118, 108), (90, 70, 20), 2)
    cv2.line(img, (10, 50), (118, 50), (255, 255, 255), 2)
    if emblem:
        cv2.rectangle(img, (80, 74), (116, 106), (30, 30, 30), -1)
        cv2.circle(img, (98, 90), 9, (230, 230, 230), -1)
    return img


def rgba_drawing(bar: bool = False) -> np.ndarray:
    """A folder-like drawing on transparent ground (BGRA, 128 px, antialiased edges); ``bar`` adds
    an opaque light-grey bar under it: on white it barely shows, in alpha it is a new shape."""
    img = np.zeros((128, 128, 4), np.uint8)
    cv2.rectangle(img, (14, 16), (60, 34), (30, 150, 200, 255), -1, cv2.LINE_AA)
    cv2.rectangle(img, (10, 28), (118, 92), (40, 190, 235, 255), -1, cv2.LINE_AA)
    cv2.rectangle(img, (10, 28), (118, 92), (20, 70, 90, 255), 2, cv2.LINE_AA)
    if bar:
        cv2.rectangle(img, (10, 104), (118, 116), (230, 230, 230, 255), -1)
    return img


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


# --- valid-but-unusual files (must be accepted) and really broken ones (must be rejected) --------


def jpeg_photo(seed: int = 20, h: int = 512, w: int = 512, quality: int = 90, progressive: bool = False) -> bytes:
    """A real-sized JPEG (512 px by default), baseline or progressive."""
    img = photo(seed, h, w)
    return pil_bytes(Image.fromarray(img), "JPEG", quality=quality, progressive=progressive)


def mp4_box_tail(n: int = 160_000, seed: int = 0) -> bytes:
    """What a phone's motion photo appends: an MP4 ``ftyp`` box, then media data."""
    rng = np.random.default_rng(seed)
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"mp42", 0) + b"isommp42"
    mdat_body = rng.bytes(n)
    return ftyp + struct.pack(">I4s", 8 + len(mdat_body), b"mdat") + mdat_body


def mpo(seed: int = 21) -> bytes:
    """A two-frame MPO as cameras write it: JPEG 1 with an APP2 'MPF' segment, then JPEG 2."""
    first = jpeg_photo(seed, 240, 320)
    second = jpeg_photo(seed + 1, 240, 320)
    mpf = b"MPF\x00" + b"II*\x00\x08\x00\x00\x00" + b"\x00\x00"  # an (empty) MP index IFD
    app2 = b"\xff\xe2" + struct.pack(">H", 2 + len(mpf)) + mpf
    return first[:2] + app2 + first[2:] + second


def jpeg_with_stray_bytes(seed: int = 22) -> bytes:
    """Stray non-marker bytes between two marker segments (libjpeg skips them with a warning)."""
    data = jpeg_photo(seed, 128, 128)
    sos = data.index(b"\xff\xda")
    return data[:sos] + b"\x00\x13\x37junk" + data[sos:]


def jpeg_scan_cut(data: bytes, fraction: float) -> bytes:
    """``data`` cut at ``fraction`` of its entropy-coded data (after the first SOS segment)."""
    sos = data.index(b"\xff\xda")
    (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
    start = sos + 2 + length
    eoi = data.rindex(b"\xff\xd9")
    return data[: start + int((eoi - start) * fraction)]


def gif_plain(seed: int = 23) -> bytes:
    return pil_bytes(Image.fromarray(photo(seed, 32, 48)).convert("P"), "GIF")


def with_exif_orientation(fmt: str, rgb: np.ndarray, orientation: int) -> bytes:
    """``rgb`` stored as is, in ``fmt`` (PNG, WEBP, TIFF, JPEG, AVIF, HEIF), declaring
    ``orientation`` the way that format does (EXIF; TIFF's tag; irot/imir for AVIF/HEIF)."""
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = orientation
    if fmt == "TIFF":
        return pil_bytes(img, "TIFF", tiffinfo={0x0112: orientation})
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
        return pil_bytes(img, "HEIF", exif=exif.tobytes(), quality=-1)
    kw = {"lossless": True} if fmt == "WEBP" else {"quality": 100} if fmt in ("JPEG", "AVIF") else {}
    return pil_bytes(img, fmt, exif=exif.tobytes(), **kw)


def upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """What a viewer shows for pixels stored with EXIF ``orientation`` (Pillow's rule)."""
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    from PIL import ImageOps

    return np.asarray(ImageOps.exif_transpose(img))
