"""Real-world files, no JVM: what must be accepted although it is odd, what must still be rejected,
formats told by content, and orientation in every format that carries it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ptdm_spark.imaging import reasons, sniff
from ptdm_spark.imaging.cv import cv2
from ptdm_spark.imaging.pipeline import process_image
from tests.imagefiles import (
    encode,
    gif_plain,
    jpeg_photo,
    jpeg_scan_cut,
    jpeg_with_stray_bytes,
    mp4_box_tail,
    mpo,
    photo,
    pil_bytes,
    upright,
    with_exif_orientation,
)

pytestmark = pytest.mark.unit


def _tail(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).bytes(n)


# --- acceptance list: valid but unusual --------------------------------------------------------

ACCEPT = {
    # A 512 px photo + 150-200 KB of trailing bytes, twelve times (9 of 12 were rejected before).
    **{f"jpeg+random-tail-{i}": (lambda i=i: jpeg_photo(30 + i) + _tail(150_000 + 5_000 * i, i)) for i in range(12)},
    "jpeg+mp4-motion-photo": lambda: jpeg_photo(50) + mp4_box_tail(),
    "progressive-jpeg+tail": lambda: jpeg_photo(51, progressive=True) + _tail(170_000, 51),
    "mpo-two-frames": lambda: mpo(52),
    "jpeg+zero-padding": lambda: jpeg_photo(53) + b"\x00" * 65536,
    "jpeg+ff-padding": lambda: jpeg_photo(54) + b"\xff" * 4096,
    "jpeg-stray-bytes-between-markers": lambda: jpeg_with_stray_bytes(55),
    "gif+crlf": lambda: gif_plain(56) + b"\r\n",
    "gif+nul-padding": lambda: gif_plain(57) + b"\x00" * 100,
    "png+trailing-bytes": lambda: encode(photo(58)) + _tail(5000, 58),
    "webp+trailing-bytes": lambda: encode(photo(60), ".webp") + b"\r\n",
}


@pytest.mark.parametrize("name", sorted(ACCEPT))
def test_valid_unusual_files_are_accepted(params, name):
    data = ACCEPT[name]()
    rec = process_image(data, params)
    assert rec["reason"] is None, rec["detail"]
    # Independent truth: Pillow reads the same first image.
    import io

    ref = Image.open(io.BytesIO(data))
    assert (rec["width"], rec["height"]) == ref.size


def test_mpo_yields_its_first_frame(params):
    data = mpo(52)
    assert sniff.detect_format(data) == "mpo"
    rec = process_image(data, params)
    first = cv2.imdecode(np.frombuffer(jpeg_photo(52, 240, 320), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    got = cv2.imdecode(np.frombuffer(rec["image"], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    assert np.abs(got.astype(int) - first.astype(int)).max() <= 1


# --- still rejected ----------------------------------------------------------------------------


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_jpeg_cut_inside_its_scan_is_truncated(params, fraction, progressive):
    data = jpeg_scan_cut(jpeg_photo(61, progressive=progressive), fraction)
    # Some decoders (libjpeg's own default, Pillow with LOAD_TRUNCATED_IMAGES) hand back
    # grey-filled pixels for this; the scan walk decides whatever the decoder does.
    assert sniff.read_header(data).problem.startswith("truncated")
    rec = process_image(data, params)
    assert rec["reason"] == reasons.TRUNCATED, rec["detail"]


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda: jpeg_photo(62)[:400], reasons.TRUNCATED),  # cut in the header segments
        (lambda: gif_plain(63)[:40], reasons.TRUNCATED),  # cut in the first frame
        (lambda: encode(photo(64))[:200], reasons.TRUNCATED),
        (lambda: b"\xff\xd8\xff\xe0" + b"\x00" * 30, reasons.CORRUPT),  # a segment of length 0
        (lambda: encode(photo(59))[:-12], reasons.TRUNCATED),  # complete data, no IEND: libpng refuses
        (lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, reasons.TRUNCATED),
        (lambda: b"GIF89a" + b"\x00" * 20, reasons.CORRUPT),
        (lambda: b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 40, reasons.CORRUPT),
        (lambda: b"P6\n10 10\n255\n" + b"\x00" * 20, reasons.CORRUPT),
        (lambda: b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1" + b"\x00" * 64, reasons.CORRUPT),
        (lambda: b"<html><body>404</body></html>", reasons.NOT_IMAGE),
    ],
    ids=["jpeg-header-cut", "gif-frame-cut", "png-cut", "jpeg-zero-length-segment", "png-without-iend",
         "png-signature-only", "gif-header-only",
         "webp-garbage", "ppm-short", "avif-garbage", "html"],
)
def test_hostile_files_still_rejected(params, make, reason):
    rec = process_image(make(), params)
    assert rec["reason"] == reason, rec["detail"]
    assert rec["image"] is None


# --- formats by content ------------------------------------------------------------------------


def _heic(img: np.ndarray) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return pil_bytes(Image.fromarray(img), "HEIF", quality=-1)


FORMATS = {
    "avif": lambda img: pil_bytes(Image.fromarray(img), "AVIF", quality=100),
    "heif": _heic,
    "jpeg2000": lambda img: encode(img, ".jp2"),
    "jpeg2000-codestream": lambda img: pil_bytes(Image.fromarray(img), "JPEG2000", no_jp2=True),
    "pnm-ppm": lambda img: encode(img, ".ppm"),
    "pnm-pgm": lambda img: encode(img[..., 0], ".pgm"),
    "pnm-pbm": lambda img: encode(img[..., 0], ".pbm"),
    "pnm-pam": lambda img: encode(img, ".pam"),
    "pfm": lambda img: encode(img.astype(np.float32) / 255, ".pfm"),
    "apng": lambda img: pil_bytes(Image.fromarray(img), "PNG", save_all=True, append_images=[Image.fromarray(img[::-1])]),
    "tiff": lambda img: encode(img, ".tiff"),
    "bmp": lambda img: encode(img, ".bmp"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_decodable_format_is_read_by_content(params, name):
    img = photo(70, 40, 60)
    rec = process_image(FORMATS[name](img), params)
    assert rec["reason"] is None, rec["detail"]
    assert rec["format"] == name.split("-")[0]
    assert (rec["width"], rec["height"]) == (60, 40)
    got = cv2.imdecode(np.frombuffer(rec["image"], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(int)
    want = img.astype(int)
    if name in ("pnm-pgm", "pnm-pbm"):
        assert (got[..., 0] == got[..., 1]).all()
    else:  # lossy codecs get a tolerance; the picture must be the same one, the right way round
        assert np.abs(got - want).mean() < 8, np.abs(got - want).mean()


# --- orientation in every format that carries it ------------------------------------------------


def _marked() -> np.ndarray:
    img = np.full((48, 80, 3), 40, np.uint8)
    img[:16, :16] = (250, 20, 20)  # red block top-left
    img[-16:, -24:] = (20, 20, 250)  # blue block bottom-right
    return img


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "AVIF", "HEIF"])
def test_orientation_applied_in_every_format(params, fmt, orientation):
    img = _marked()
    data = with_exif_orientation(fmt, img, orientation)
    rec = process_image(data, params)
    assert rec["reason"] is None, rec["detail"]
    want = upright(img, orientation).astype(int)
    got = cv2.imdecode(np.frombuffer(rec["image"], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].astype(int)
    assert got.shape == want.shape
    assert np.abs(got - want).mean() < 12
    assert rec["orientation"] == orientation
    assert (rec["width"], rec["height"]) == (want.shape[1], want.shape[0])


# --- decoder chatter ---------------------------------------------------------------------------


def test_decoder_warnings_are_kept_with_the_image_not_printed(params, capfd):
    rec = process_image(jpeg_with_stray_bytes(55), params)
    assert rec["reason"] is None
    assert "extraneous bytes" in rec["decoder_warnings"]
    assert capfd.readouterr().err == ""
    clean = process_image(jpeg_photo(56, 64, 64), params)
    assert clean["decoder_warnings"] is None
