"""Recognise the format from the bytes, read dimensions from the header, find where an image ends.

The decoder decides whether an image is valid; this module only

* names the format by content (magic bytes), whatever the file is called;
* reads the declared dimensions, so that a header claiming 60000x60000 pixels is rejected as a
  pixel bomb before any decoder allocates memory for it;
* finds truncation: the image data ends before the image is complete (a JPEG whose entropy-coded
  scan runs to the end of the file without an end-of-image marker, a PNG whose compressed stream
  stops early, a GIF whose first frame is cut). libjpeg returns grey-filled pixels for a cut JPEG,
  so the decoder alone cannot tell. Bytes *after* a complete image (a phone's motion-photo video,
  a second MPO frame, padding) are not truncation: the walk stops at the image's end;
* reads the orientation a file declares (EXIF in JPEG, PNG, WebP, TIFF; ``irot``/``imir`` in
  AVIF/HEIF).

Everything here is pure Python on ``bytes`` and never raises for bad data.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Header:
    """What the bytes say about themselves. ``width``/``height`` are None when not parsed."""

    format: str | None  # see FORMATS; None = no known signature
    width: int | None = None
    height: int | None = None
    problem: str | None = None  # "truncated: ...": rejected even when a decoder returns pixels
    hint: str | None = None  # "truncated: ..." / "corrupt: ...": the reason, should the decoder fail


# Formats we decode (OpenCV, and pillow-heif for HEIF), and formats we recognise but do not.
DECODABLE = ("jpeg", "mpo", "png", "apng", "gif", "bmp", "webp", "tiff", "avif", "heif", "jpeg2000", "pnm", "pfm")
_UNSUPPORTED = {
    b"8BPS": "psd",
    b"%PDF": "pdf",
    b"\x00\x00\x01\x00": "ico",
    b"\x76\x2f\x31\x01": "exr",
    b"\x00\x00\x00\x0cJXL ": "jxl",
    b"\xff\x0a": "jxl",
}
FORMATS = DECODABLE + tuple(sorted(set(_UNSUPPORTED.values())))

_HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2")
_AVIF_BRANDS = (b"avif", b"avis")


def detect_format(data: bytes) -> str | None:
    """The format named by the first bytes of ``data`` (None: no known image signature).

    MPO (a camera's multi-picture JPEG) and APNG (animated PNG) are told apart from plain
    JPEG / PNG by a marker segment / chunk near the start."""
    if data[:3] == b"\xff\xd8\xff":
        return "mpo" if _jpeg_has_mpf(data) else "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "apng" if b"acTL" in data[:4096] and data.find(b"acTL") < max(data.find(b"IDAT"), 0) else "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[4:8] == b"ftyp":
        brands = _ftyp_brands(data)
        if any(b in brands for b in _AVIF_BRANDS):
            return "avif"
        if any(b in brands for b in _HEIF_BRANDS):
            return "heif"
    if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or data[:4] == b"\xff\x4f\xff\x51":
        return "jpeg2000"
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"1234567" and data[2:3].isspace():
        return "pnm"
    if data[:2] in (b"PF", b"Pf") and data[2:3].isspace():
        return "pfm"
    for sig, name in _UNSUPPORTED.items():
        if data.startswith(sig):
            return name
    return None


def _ftyp_brands(data: bytes) -> list[bytes]:
    (size,) = struct.unpack(">I", data[:4]) if len(data) >= 4 else (0,)
    body = data[8 : min(max(size, 16), 256)]
    return [body[i : i + 4] for i in range(0, len(body) - 3, 4) if i != 4]  # major, (version), compatible


def read_header(data: bytes) -> Header:
    """Format, dimensions and structural problems of ``data``; never raises."""
    fmt = detect_format(data)
    parser = _PARSERS.get(fmt)
    if parser is None:
        return Header(fmt)
    try:
        return parser(data, fmt)
    except (struct.error, IndexError, ValueError) as exc:
        return Header(fmt, problem=f"truncated: header ends early ({exc})")


# --- JPEG ----------------------------------------------------------------------------------------

_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
# Inside an entropy-coded scan a 0xFF byte is followed by 0x00 (stuffing) or a restart marker
# (D0..D7); anything else (after optional fill bytes) is the marker that ends the scan.
_SCAN_END = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def _jpeg_has_mpf(data: bytes) -> bool:
    i = 2
    while i + 10 <= len(data) and data[i] == 0xFF and data[i + 1] not in (0xDA, 0xD9):
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if data[i + 1] == 0xE2 and data[i + 4 : i + 8] == b"MPF\x00":
            return True
        i += 2 + length
    return False


def jpeg_end(data: bytes) -> tuple[int | None, int | None, int | None, str | None]:
    """Walk a JPEG's marker segments and scans: (width, height, end offset, problem).

    ``end`` is the offset just past the end-of-image marker; None when the data runs out first,
    which is truncation (``problem`` says where). Bytes between segments that are not a marker
    (libjpeg skips them with a warning) are stepped over, as the decoder does."""
    n = len(data)
    i = 2
    width = height = None
    seen_scan = False
    while True:
        if i >= n:
            break
        if data[i] != 0xFF:  # stray bytes before a marker: libjpeg skips to the next 0xFF
            j = data.find(b"\xff", i)
            if j < 0:
                break
            i = j
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0xD9:
            if width is None:
                return None, None, i, "corrupt: end-of-image marker before any frame header (SOF)"
            return width, height, i, None
        if marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone / stray
            continue
        if i + 2 > n:
            break
        (length,) = struct.unpack(">H", data[i : i + 2])
        if length < 2:
            return width, height, None, f"corrupt: marker segment FF{marker:02X} has length {length}"
        if i + length > n:
            return width, height, None, f"truncated: marker segment FF{marker:02X} runs past the end of the file"
        if marker in _SOF and length >= 7:
            height, width = struct.unpack(">HH", data[i + 3 : i + 7])
        i += length
        if marker == 0xDA:
            if width is None:
                return None, None, None, "corrupt: image data (SOS) before the frame header (SOF)"
            seen_scan = True
            m = _SCAN_END.search(data, i)
            if m is None:
                return width, height, None, "truncated: the image data ends before the end-of-image marker (FFD9)"
            i = m.start()
    if width is None:
        return None, None, None, "truncated: the file ends before the frame header (SOF)"
    if not seen_scan:
        return width, height, None, "truncated: the file ends before the image data (SOS)"
    return width, height, None, "truncated: the file ends before the end-of-image marker (FFD9)"


def _jpeg(data: bytes, fmt: str) -> Header:
    width, height, _end, problem = jpeg_end(data)
    if problem and not problem.startswith("truncated"):
        return Header(fmt, width, height, hint=problem)
    return Header(fmt, width, height, problem)


# --- PNG -----------------------------------------------------------------------------------------


def _png(data: bytes, fmt: str) -> Header:
    if len(data) < 33 or data[12:16] != b"IHDR":
        return Header(fmt, problem="truncated: no complete IHDR chunk")
    width, height = struct.unpack(">II", data[16:24])
    i = 8
    n = len(data)
    inflater = zlib.decompressobj()
    saw_idat = False
    while i + 8 <= n:
        (length,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        end = i + 12 + length
        if ctype == b"IDAT":
            saw_idat = True
            try:
                _drain(inflater, data[i + 8 : min(i + 8 + length, n)])
            except zlib.error as exc:
                return Header(fmt, width, height, f"corrupt: image data does not inflate ({exc})")
        elif ctype == b"IEND":
            break
        if end > n:
            if inflater.eof:
                break
            return Header(fmt, width, height, f"truncated: chunk {ctype.decode('latin-1')!r} runs past the end")
        i = end
    if not saw_idat:
        return Header(fmt, width, height, "truncated: no image data (IDAT)")
    if not inflater.eof:
        return Header(fmt, width, height, "truncated: the compressed image data ends early")
    # The image data is complete; a missing IEND only names the reason should libpng refuse it.
    return Header(fmt, width, height, hint=None if ctype == b"IEND" else "truncated: the file ends before IEND")


def _drain(inflater: "zlib._Decompress", chunk: bytes) -> None:
    """Feed ``chunk`` to the inflater, discarding output in bounded pieces (no memory bomb)."""
    buf = chunk
    while buf and not inflater.eof:
        inflater.decompress(buf, 1 << 20)
        buf = inflater.unconsumed_tail


# --- GIF -----------------------------------------------------------------------------------------


def _gif(data: bytes, fmt: str) -> Header:
    """Walk to the end of the first frame (the one we decode); a trailer is not required after it."""
    width, height = struct.unpack("<HH", data[6:10])
    n = len(data)
    flags = data[10]
    i = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    while True:
        if i >= n:
            return Header(fmt, width, height, "truncated: the file ends before the first frame's image data")
        block = data[i]
        if block == 0x3B:
            return Header(fmt, width, height, hint="corrupt: no frame before the GIF trailer")
        if block == 0x21:  # extension: label, then sub-blocks
            i = _gif_sub_blocks(data, i + 2)
        elif block == 0x2C:  # image descriptor (+ local colour table), LZW code size, sub-blocks
            if i + 10 > n:
                return Header(fmt, width, height, "truncated: the first frame's descriptor is cut")
            local = data[i + 9]
            i += 10 + (3 * (2 << (local & 7)) if local & 0x80 else 0) + 1
            i = _gif_sub_blocks(data, i)
            if i > n:
                return Header(fmt, width, height, "truncated: the first frame's image data ends early")
            return Header(fmt, width, height)
        else:
            return Header(fmt, width, height, hint=f"corrupt: unknown GIF block 0x{block:02X} at byte {i}")
        if i > n:
            return Header(fmt, width, height, "truncated: an extension block runs past the end")


def _gif_sub_blocks(data: bytes, i: int) -> int:
    """Offset after a chain of sub-blocks starting at ``i`` (past the end when cut)."""
    n = len(data)
    while i < n:
        size = data[i]
        i += 1
        if size == 0:
            return i
        i += size
    return n + 1


# --- BMP, WebP, TIFF -----------------------------------------------------------------------------


def _bmp(data: bytes, fmt: str) -> Header:
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
            return Header(fmt, width, height, "truncated: the pixel array ends early")
    elif file_size > len(data):
        return Header(fmt, width, height, "truncated: shorter than the size in its header")
    return Header(fmt, width, height)


def _webp(data: bytes, fmt: str) -> Header:
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
        return Header(fmt, width, height, "truncated: shorter than the RIFF size in its header")
    return Header(fmt, width, height)


def _tiff_ifd0(tiff: bytes) -> dict[int, int]:
    """Integer tags of a TIFF structure's first IFD (SHORT / LONG values only)."""
    end = "<" if tiff[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", tiff[4:8])
    (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
    tags = {}
    for k in range(count):
        e = ifd + 2 + 12 * k
        if e + 12 > len(tiff):
            break
        tag, typ = struct.unpack(end + "HH", tiff[e : e + 4])
        if typ == 3:
            tags[tag] = struct.unpack(end + "H", tiff[e + 8 : e + 10])[0]
        elif typ == 4:
            tags[tag] = struct.unpack(end + "I", tiff[e + 8 : e + 12])[0]
    return tags


def _tiff(data: bytes, fmt: str) -> Header:
    (ifd,) = struct.unpack(("<" if data[:2] == b"II" else ">") + "I", data[4:8])
    if ifd + 2 > len(data):
        return Header(fmt, problem="truncated: the first IFD lies past the end")
    tags = _tiff_ifd0(data)
    return Header(fmt, tags.get(256), tags.get(257))


# --- AVIF / HEIF, JPEG 2000, PNM, PFM ------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int):
    """(type, payload start, payload end) of the ISOBMFF boxes in data[start:end]."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        head = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[i + 8 : i + 16])
            head = 16
        elif size == 0:
            size = end - i
        if size < head:
            return
        yield kind, i + head, min(i + size, end)
        i += size


def _heif_properties(data: bytes) -> dict[bytes, list[bytes]]:
    """Payloads of the item properties (ispe, irot, imir...) in meta/iprp/ipco."""
    props: dict[bytes, list[bytes]] = {}
    for kind, s, e in _boxes(data, 0, len(data)):
        if kind != b"meta":
            continue
        for k2, s2, e2 in _boxes(data, s + 4, e):  # meta is a full box: 4 bytes version/flags
            if k2 != b"iprp":
                continue
            for k3, s3, e3 in _boxes(data, s2, e2):
                if k3 == b"ipco":
                    for k4, s4, e4 in _boxes(data, s3, e3):
                        props.setdefault(k4, []).append(data[s4:e4])
        break
    return props


def _heif(data: bytes, fmt: str) -> Header:
    props = _heif_properties(data)
    sizes = [struct.unpack(">II", p[4:12]) for p in props.get(b"ispe", []) if len(p) >= 12]
    if not sizes:
        return Header(fmt)
    width, height = max(sizes, key=lambda wh: wh[0] * wh[1])  # a grid's full size, not a tile's
    return Header(fmt, width, height)


def _jpeg2000(data: bytes, fmt: str) -> Header:
    if data[:4] == b"\xff\x4f\xff\x51":  # raw codestream: SIZ follows SOC
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", data[8:24])
        return Header(fmt, xsiz - xo, ysiz - yo)
    for kind, s, e in _boxes(data, 0, len(data)):
        if kind == b"jp2h":
            for k2, s2, _e2 in _boxes(data, s, e):
                if k2 == b"ihdr":
                    height, width = struct.unpack(">II", data[s2 : s2 + 8])
                    return Header(fmt, width, height)
    return Header(fmt)


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n)*(\S+)")


def _pnm_numbers(data: bytes, count: int) -> list[int]:
    out, i = [], 2
    for _ in range(count):
        m = _PNM_TOKEN.match(data, i)
        if m is None:
            raise ValueError("header ends early")
        out.append(int(m.group(1)))
        i = m.end()
    return out


def _pnm(data: bytes, fmt: str) -> Header:
    if data[:2] == b"P7":  # PAM: "WIDTH w" / "HEIGHT h" lines up to ENDHDR
        head = data[: data.find(b"ENDHDR") if b"ENDHDR" in data[:4096] else 4096]
        dims = dict(re.findall(rb"^(WIDTH|HEIGHT)\s+(\d+)", head, re.M))
        return Header(fmt, int(dims.get(b"WIDTH", 0)) or None, int(dims.get(b"HEIGHT", 0)) or None)
    width, height = _pnm_numbers(data[:1024], 2)
    return Header(fmt, width, height)


_PARSERS = {
    "jpeg": _jpeg, "mpo": _jpeg, "png": _png, "apng": _png, "gif": _gif, "bmp": _bmp, "webp": _webp,
    "tiff": _tiff, "avif": _heif, "heif": _heif, "jpeg2000": _jpeg2000, "pnm": _pnm, "pfm": _pnm,
}


# --- orientation ---------------------------------------------------------------------------------


def exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) a JPEG, PNG, WebP or TIFF file declares; 1 when absent."""
    try:
        fmt = detect_format(data)
        if fmt in ("jpeg", "mpo"):
            blob = _jpeg_exif(data)
        elif fmt in ("png", "apng"):
            blob = _png_chunk(data, b"eXIf")
        elif fmt == "webp":
            blob = _riff_chunk(data, b"EXIF")
            if blob is not None and blob.startswith(b"Exif\x00\x00"):
                blob = blob[6:]
        elif fmt == "tiff":
            blob = data
        else:
            return 1
        if blob is None:
            return 1
        value = _tiff_ifd0(blob).get(0x0112, 1)
    except (struct.error, IndexError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _jpeg_exif(data: bytes) -> bytes | None:
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker in (0xDA, 0xD9):
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker == 0xE1 and data[i + 4 : i + 10] == b"Exif\x00\x00":
            return data[i + 10 : i + 2 + length]
        i += 2 + length
    return None


def _png_chunk(data: bytes, kind: bytes) -> bytes | None:
    i = 8
    while i + 8 <= len(data):
        (length,) = struct.unpack(">I", data[i : i + 4])
        ctype = data[i + 4 : i + 8]
        if ctype == kind:
            return data[i + 8 : i + 8 + length]
        if ctype == b"IEND":
            break
        i += 12 + length
    return None


def _riff_chunk(data: bytes, kind: bytes) -> bytes | None:
    i = 12
    while i + 8 <= len(data):
        ctype, (length,) = data[i : i + 4], struct.unpack("<I", data[i + 4 : i + 8])
        if ctype == kind:
            return data[i + 8 : i + 8 + length]
        i += 8 + length + (length & 1)
    return None


def heif_transform(data: bytes) -> tuple[int, int | None]:
    """(anticlockwise quarter turns from ``irot``, mirror axis from ``imir`` or None) of an
    AVIF/HEIF file's properties; applied in that order (rotate, then mirror)."""
    try:
        props = _heif_properties(data)
    except (struct.error, IndexError, ValueError):
        return 0, None
    turns = props[b"irot"][0][0] & 3 if props.get(b"irot") else 0
    axis = props[b"imir"][0][0] & 1 if props.get(b"imir") else None
    return turns, axis


# (quarter turns, mirror axis) -> the EXIF orientation with the same effect (axis 0: top-bottom
# flip, axis 1: left-right flip), so that every format's orientation is reported one way.
HEIF_TO_EXIF = {
    (0, None): 1, (0, 1): 2, (2, None): 3, (0, 0): 4, (1, 0): 5, (3, 1): 5, (3, None): 6,
    (3, 0): 7, (1, 1): 7, (1, None): 8, (2, 0): 2, (2, 1): 4,
}
