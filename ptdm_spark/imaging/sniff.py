"""Recognise the format from the bytes, read dimensions from the header, detect truncation.

All of this runs before any decoder sees the bytes: a header claiming 60000x60000 pixels is a
pixel bomb whatever the decoder would do with it, and a JPEG without its end marker is truncated
even though libjpeg happily returns grey-padded pixels for it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Header:
    """What the bytes say about themselves. ``width``/``height`` are None when not parsed."""

    format: str | None  # jpeg | png | gif | bmp | webp | tiff | <other recognised> | None
    width: int | None = None
    height: int | None = None
    problem: str | None = None  # None, or "truncated: ..." / "corrupt: ..."


# Recognised but not decoded (signature -> name).
_UNSUPPORTED = {
    b"\x00\x00\x00\x0cjP  ": "jpeg2000",
    b"8BPS": "psd",
    b"%PDF": "pdf",
    b"\x00\x00\x01\x00": "ico",
}


def detect_format(data: bytes) -> str | None:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"msf1", b"hevc"):
        return "heif"
    for sig, name in _UNSUPPORTED.items():
        if data.startswith(sig):
            return name
    return None


DECODABLE = ("jpeg", "png", "gif", "bmp", "webp", "tiff")


def read_header(data: bytes) -> Header:
    """Format, dimensions and structural problems of ``data``; never raises."""
    fmt = detect_format(data)
    try:
        if fmt == "jpeg":
            return _jpeg(data)
        if fmt == "png":
            return _png(data)
        if fmt == "gif":
            return _gif(data)
        if fmt == "bmp":
            return _bmp(data)
        if fmt == "webp":
            return _webp(data)
        if fmt == "tiff":
            return _tiff(data)
    except (struct.error, IndexError, ValueError) as exc:
        return Header(fmt, problem=f"truncated: header ends early ({exc})")
    return Header(fmt)


def _jpeg(data: bytes) -> Header:
    width = height = None
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return Header("jpeg", problem=f"corrupt: expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        i += 2 + length
    if width is None:
        return Header("jpeg", problem="truncated: no frame header (SOF) before the end of the file")
    sos = data.rfind(b"\xff\xda")
    eoi = data.rfind(b"\xff\xd9")
    if sos < 0:
        return Header("jpeg", width, height, "truncated: no image data (SOS marker)")
    if eoi < sos:
        return Header("jpeg", width, height, "truncated: the end-of-image marker (FFD9) is missing")
    return Header("jpeg", width, height)


def _png(data: bytes) -> Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        return Header("png", problem="truncated: no complete IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    i = 8
    n = len(data)
    inflater = zlib.decompressobj()
    saw_iend = False
    while i + 8 <= n:
        (length,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > n:
            return Header("png", width, height, f"truncated: chunk {ctype.decode('latin-1')!r} runs past the end")
        if ctype == b"IDAT":
            try:
                _drain(inflater, data[i + 8 : i + 8 + length])
            except zlib.error as exc:
                return Header("png", width, height, f"corrupt: image data does not inflate ({exc})")
        if ctype == b"IEND":
            saw_iend = True
            break
        i = end
    if not saw_iend:
        return Header("png", width, height, "truncated: no IEND chunk")
    if not inflater.eof:
        return Header("png", width, height, "truncated: the compressed image data ends early")
    return Header("png", width, height)


def _drain(inflater: "zlib._Decompress", chunk: bytes) -> None:
    """Feed ``chunk`` to the inflater, discarding output in bounded pieces (no memory bomb)."""
    buf = chunk
    while buf and not inflater.eof:
        inflater.decompress(buf, 1 << 20)
        buf = inflater.unconsumed_tail


def _gif(data: bytes) -> Header:
    width, height = struct.unpack("<HH", data[6:10])
    if data.rstrip(b"\x00")[-1:] != b";":
        return Header("gif", width, height, "truncated: no GIF trailer (0x3B)")
    return Header("gif", width, height)


def _bmp(data: bytes) -> Header:
    (file_size,) = struct.unpack("<I", data[2:6])
    (offset,) = struct.unpack("<I", data[10:14])
    (dib,) = struct.unpack("<I", data[14:18])
    if dib == 12:
        width, height = struct.unpack("<HH", data[18:22])
        bpp = struct.unpack("<H", data[24:26])[0]
        compression = 0
    else:
        width, height = struct.unpack("<ii", data[18:26])
        bpp = struct.unpack("<H", data[28:30])[0]
        compression = struct.unpack("<I", data[30:34])[0]
    width, height = abs(width), abs(height)
    if compression in (0, 3):  # uncompressed: the pixel array size is known
        row = ((width * bpp + 31) // 32) * 4
        if offset + row * height > len(data):
            return Header("bmp", width, height, "truncated: the pixel array ends early")
    elif file_size > len(data):
        return Header("bmp", width, height, "truncated: shorter than the size in its header")
    return Header("bmp", width, height)


def _webp(data: bytes) -> Header:
    (riff_size,) = struct.unpack("<I", data[4:8])
    chunk = data[12:16]
    width = height = None
    if chunk == b"VP8 ":
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[26:30]))
    elif chunk == b"VP8L":
        b = data[21:25]
        width = 1 + (((b[1] & 0x3F) << 8) | b[0])
        height = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
    elif chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
    if riff_size + 8 > len(data):
        return Header("webp", width, height, "truncated: shorter than the RIFF size in its header")
    return Header("webp", width, height)


def _tiff(data: bytes) -> Header:
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    if ifd + 2 > len(data):
        return Header("tiff", problem="truncated: the first IFD lies past the end")
    (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
    width = height = None
    for k in range(count):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack(end + "HH", data[e : e + 4])
        if typ == 3:
            value = struct.unpack(end + "H", data[e + 8 : e + 10])[0]
        else:
            value = struct.unpack(end + "I", data[e + 8 : e + 12])[0]
        if tag == 256:
            width = value
        elif tag == 257:
            height = value
    return Header("tiff", width, height)


def exif_orientation(data: bytes) -> int:
    """EXIF orientation (1..8) of a JPEG, or 1 when absent or unreadable."""
    if data[:3] != b"\xff\xd8\xff":
        return 1
    i = 2
    try:
        while i + 4 <= len(data) and data[i] == 0xFF:
            marker = data[i + 1]
            if marker == 0xDA:
                break
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
                return _tiff_orientation(data[i + 10 : i + 2 + length])
            i += 2 + length
    except (struct.error, IndexError):
        return 1
    return 1


def _tiff_orientation(tiff: bytes) -> int:
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", tiff[4:8])
    (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
    for k in range(count):
        e = ifd + 2 + 12 * k
        tag, typ = struct.unpack(end + "HH", tiff[e : e + 4])
        if tag == 0x0112:
            value = struct.unpack(end + "H", tiff[e + 8 : e + 10])[0]
            return value if 1 <= value <= 8 else 1
    return 1
