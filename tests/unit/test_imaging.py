"""The per-image function on images with known answers and on edge-case files; no JVM."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from ptdm_spark.imaging import hashing, quality, reasons, sniff
from ptdm_spark.imaging.cv import cv2
from ptdm_spark.imaging.pipeline import FIELDS, process_image
from tests.imagefiles import (
    animated_gif,
    encode,
    jpeg_with_orientation,
    palette_png_with_transparency,
    photo,
    pil_bytes,
    png_claiming,
)

pytestmark = pytest.mark.unit


def decoded_rgb(rec: dict) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(rec["image"], np.uint8), cv2.IMREAD_UNCHANGED)
    return bgr[:, :, ::-1]


def test_all_black_image_has_zero_brightness_and_flat_has_zero_blur(params):
    rec = process_image(encode(np.zeros((32, 32, 3), np.uint8)), params)
    assert rec["reason"] is None
    assert rec["brightness"] == 0.0
    assert rec["blur"] == 0.0
    assert rec["contrast"] == 0.0
    assert rec["entropy"] == 0.0
    flat = process_image(encode(np.full((40, 20, 3), 200, np.uint8)), params)
    assert flat["blur"] == 0.0
    assert flat["brightness"] == pytest.approx(200 / 255)
    assert flat["aspect_ratio"] == 0.5


def test_white_image_brightness_one_and_half_split_entropy_one_bit(params):
    assert process_image(encode(np.full((16, 16, 3), 255, np.uint8)), params)["brightness"] == 1.0
    half = np.zeros((16, 16, 3), np.uint8)
    half[:, 8:] = 255
    rec = process_image(encode(half), params)
    assert rec["entropy"] == pytest.approx(1.0)
    assert rec["contrast"] == pytest.approx(0.5)
    assert rec["blur"] > 0


def test_good_png_record_is_complete_and_pixels_round_trip(params):
    img = photo(1)
    rec = process_image(encode(img), params)
    assert set(rec) == set(FIELDS)
    assert rec["reason"] is None and rec["format"] == "png"
    assert (rec["width"], rec["height"], rec["channels"], rec["bit_depth"]) == (96, 64, 3, 8)
    np.testing.assert_array_equal(decoded_rgb(rec), img)
    assert len(rec["pixel_sha256"]) == 64


def test_same_pixels_different_container_same_pixel_hash(params):
    img = photo(2)
    a = process_image(encode(img, ".png"), params)
    b = process_image(encode(img, ".bmp"), params)
    c = process_image(encode(img, ".tiff"), params)
    assert a["pixel_sha256"] == b["pixel_sha256"] == c["pixel_sha256"]
    assert {a["format"], b["format"], c["format"]} == {"png", "bmp", "tiff"}


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", reasons.EMPTY),
        (b"this is a text file, not a png\n", reasons.NOT_IMAGE),
        (np.random.default_rng(0).bytes(4096), reasons.NOT_IMAGE),
        (b"%PDF-1.4\n...", reasons.UNSUPPORTED),
    ],
    ids=["empty", "text-named-png", "random-bytes", "pdf"],
)
def test_bad_inputs_get_their_reason(params, data, reason):
    rec = process_image(data, params)
    assert rec["reason"] == reason
    assert rec["detail"]
    assert rec["image"] is None and rec["pixel_sha256"] is None


def test_truncated_jpeg_is_truncated_even_though_decoder_returns_pixels(params):
    data = encode(photo(3, 256, 256), ".jpg")
    cut = data[: int(len(data) * 0.7)]
    # Some decoders (libjpeg with its padding, Pillow with LOAD_TRUNCATED_IMAGES) hand back
    # grey-padded pixels for this; the header check decides before any decoder runs.
    assert sniff.read_header(cut).problem.startswith("truncated")
    rec = process_image(cut, params)
    assert rec["reason"] == reasons.TRUNCATED
    assert "FFD9" in rec["detail"]


def test_truncated_png_is_truncated(params):
    data = encode(photo(4, 128, 128))
    assert process_image(data[: len(data) // 2], params)["reason"] == reasons.TRUNCATED


def test_png_whose_data_stream_ends_early_but_has_iend_is_truncated(params):
    import struct
    import zlib

    data = encode(photo(5, 64, 64))
    # Rebuild the PNG with its IDAT cut to half, then a proper IEND: the chunk walk is fine,
    # only the zlib stream is incomplete.
    i, chunks = 8, []
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        chunks.append((data[i + 4 : i + 8], data[i + 8 : i + 8 + n]))
        i += 12 + n

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    out = data[:8] + b"".join(chunk(k, b[: len(b) // 2] if k == b"IDAT" else b) for k, b in chunks)
    rec = process_image(out, params)
    assert rec["reason"] == reasons.TRUNCATED
    assert "ends early" in rec["detail"]


def test_pixel_bomb_header_rejected_before_decoding(params):
    data = png_claiming(60000, 60000)
    hdr = sniff.read_header(data)
    assert (hdr.width, hdr.height) == (60000, 60000)
    rec = process_image(data, params)
    assert rec["reason"] == reasons.TOO_LARGE
    assert "60000x60000" in rec["detail"]


def test_too_small(params):
    rec = process_image(encode(np.zeros((4, 40, 3), np.uint8)), params)
    assert rec["reason"] == reasons.TOO_SMALL


def test_cmyk_jpeg_becomes_rgb(params):
    data = pil_bytes(Image.new("CMYK", (32, 16), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red
    rec = process_image(data, params)
    assert rec["reason"] is None
    rgb = decoded_rgb(rec)
    assert rgb.shape == (16, 32, 3)
    assert rgb[..., 0].mean() > 240 and rgb[..., 1].mean() < 15 and rgb[..., 2].mean() < 15


def test_16_bit_png_scaled_to_8_bit(params):
    grey16 = np.full((16, 16), 65535, np.uint16)
    grey16[:8] = 257 * 100
    rec = process_image(encode(grey16), params)
    assert rec["bit_depth"] == 16 and rec["channels"] == 1
    rgb = decoded_rgb(rec)
    assert rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [100, 100, 100] and rgb[-1, -1].tolist() == [255, 255, 255]


def test_rgba_composited_onto_background(params):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, :8, 3] = 255  # ... opaque on the left, transparent on the right
    rec = process_image(encode(rgba), params)
    assert rec["channels"] == 4
    rgb = decoded_rgb(rec)
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[0, -1].tolist() == list(params.background)


def test_palette_png_with_transparency(params):
    rec = process_image(palette_png_with_transparency(), params)
    assert rec["reason"] is None
    rgb = decoded_rgb(rec)
    assert rgb[0, 0].tolist() == list(params.background)  # index 0 is transparent
    assert rgb[0, -1].tolist() == [0, 0, 255]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(params, orientation):
    img = photo(6, 48, 80)
    img[:16, :16] = [255, 0, 0]  # a marker in one corner
    data = jpeg_with_orientation(img, orientation)
    assert sniff.exif_orientation(data) == orientation
    rec = process_image(data, params)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(__import__("io").BytesIO(data))).convert("RGB"))
    got = decoded_rgb(rec)
    assert got.shape == expected.shape
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 2
    assert rec["orientation"] == orientation
    assert (rec["width"], rec["height"]) == (expected.shape[1], expected.shape[0])


def test_reencoding_drops_exif(params):
    data = jpeg_with_orientation(photo(7), 6)
    assert b"Exif" in data
    rec = process_image(data, params)
    assert b"Exif" not in rec["image"] and b"eXIf" not in rec["image"]


def test_animated_gif_first_frame(params):
    rec = process_image(animated_gif(), params)
    assert rec["reason"] is None and rec["format"] == "gif"
    rgb = decoded_rgb(rec)
    assert rgb[0, 0].tolist() == [255, 0, 0]


def test_webp_decodes(params):
    rec = process_image(encode(photo(8), ".webp"), params)
    assert rec["reason"] is None and rec["format"] == "webp"
    assert (rec["width"], rec["height"]) == (96, 64)


@pytest.mark.parametrize("policy,shape", [("keep", (64, 96)), ("fit", (32, 48)), ("crop", (48, 48)), ("pad", (48, 48))])
def test_size_policies(params, policy, shape):
    from dataclasses import replace

    p = replace(params, size_policy=policy, size=48 if policy != "fit" else 48)
    rec = process_image(encode(photo(9)), p)
    assert (rec["out_height"], rec["out_width"]) == shape
    assert decoded_rgb(rec).shape[:2] == shape


def test_jpeg_output_format(params):
    from dataclasses import replace

    rec = process_image(encode(photo(10)), replace(params, out_format="jpeg", quality=80))
    assert rec["encoding"] == "jpeg" and rec["image"][:3] == b"\xff\xd8\xff"


def test_perceptual_hashes_survive_reencoding_and_separate_different_images(params):
    a = process_image(encode(photo(11, 128, 128)), params)
    b = process_image(encode(photo(11, 128, 128), ".jpg"), params)
    c = process_image(encode(photo(12, 128, 128)), params)
    assert hashing.hamming(a["phash"], b["phash"]) <= 4
    assert hashing.hamming(a["dhash"], b["dhash"]) <= 6
    assert hashing.hamming(a["phash"], c["phash"]) > 10
    assert -(1 << 63) <= a["phash"] < (1 << 63)


@pytest.mark.slow
def test_50_megapixel_photo_processed_with_bounded_memory(params):
    """One 50-megapixel JPEG: processed, and Python-side peak memory stays a small multiple of
    its pixels (numpy and OpenCV arrays are traced)."""
    import tracemalloc

    h, w = 6000, 8400  # 50.4 MP
    base = photo(13, h // 8, w // 8)
    big = cv2.resize(base, (w, h), interpolation=cv2.INTER_LINEAR)
    data = encode(big, ".jpg")
    del big
    tracemalloc.start()
    rec = process_image(data, params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert rec["reason"] is None and (rec["width"], rec["height"]) == (w, h)
    assert peak < 6 * h * w * 3, f"peak {peak / 1e6:.0f} MB"  # < 6 copies of the RGB image (~900 MB)


def test_hash_bits_pack_most_significant_first():
    bits = np.zeros(64, bool)
    bits[-1] = True
    assert quality._bits_to_int64(bits) == 1
    bits[0] = True
    assert quality._bits_to_int64(bits) == -(1 << 63) + 1
    assert quality._bits_to_int64(np.ones(64, bool)) == -1
