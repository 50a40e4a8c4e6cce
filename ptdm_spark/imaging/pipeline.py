"""``process_image``: the whole per-image work, bytes in, a flat record out; never raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ptdm_spark.config import PrivacyConfig, ProcessConfig
from ptdm_spark.imaging import faces, normalize, quality, reasons, summary
from ptdm_spark.imaging.cv import DecoderMessages, cv2
from ptdm_spark.imaging.decode import Limits, Rejected, decode

# Keys of the record (the PROCESSED schema minus image_id).
FIELDS = (
    "reason", "detail", "format", "width", "height", "channels", "bit_depth", "orientation",
    "out_width", "out_height", "pixel_sha256", "phash", "dhash", "colour_thumb", "blur", "brightness", "contrast",
    "entropy", "aspect_ratio", "channel_spread", "image", "encoding", "decoder_warnings", "faces", "pixel_sums",
    "detail_thumb", "phash_inner", "alpha_thumb",
)


@dataclass(frozen=True)
class Params:
    """What ``process_image`` needs from the ``process`` config section, flattened and picklable."""

    limits: Limits
    out_format: str
    quality: int
    size_policy: str
    size: int
    background: tuple[int, int, int]
    privacy: PrivacyConfig | None = None  # how faces are found and blurred; None: no face detection (faces NULL)

    @classmethod
    def from_config(cls, cfg: ProcessConfig) -> "Params":
        n, p = cfg.normalize, cfg.privacy
        privacy = p if p.blur_faces else None
        return cls(Limits(cfg.max_pixels, cfg.max_side, cfg.min_side), n.format, n.quality,
                   n.size_policy, n.size, tuple(n.background), privacy)


# Native decoders' messages (fd 2) for the image being decoded; one per Python worker.
_MESSAGES = DecoderMessages()


def _empty() -> dict[str, Any]:
    return dict.fromkeys(FIELDS)


def process_image(data: bytes | None, params: Params) -> dict[str, Any]:
    """Decode, validate, score, hash, normalize and encode one image.

    With ``params.privacy``, faces are found on the decoded 8-bit RGB pixels and blurred before
    the size policy and encoding: ``image`` and ``pixel_sha256`` are of the blurred pixels, the
    scores and hashes of the image as decoded (blurring a face does not move its pHash much, and a
    rerun with blurring off finds the same near duplicates), ``faces`` is how many were found.
    An image the detector fails on (an OpenCV error) is rejected like any image OpenCV cannot
    process, never stored unblurred.

    Returns a dict with the keys of :data:`FIELDS`. On failure ``reason`` holds a reason code and
    ``detail`` a readable explanation, and the pixel fields are None. Never raises for bad data.
    """
    out = _empty()
    try:
        with _MESSAGES:
            dec = decode(bytes(data or b""), params.limits)
    except Rejected as rej:
        out.update(reason=rej.reason, detail=rej.detail, format=rej.format, decoder_warnings=_MESSAGES.text())
        return out
    warnings = _MESSAGES.text()
    try:
        rgb = normalize.to_rgb8(dec.pixels, params.background)
        _, grey = quality.working_grey(rgb)
        out.update(quality.scores(rgb))
        out.update(phash=quality.phash(grey), phash_inner=quality.phash_inner(grey), dhash=quality.dhash(grey),
                   colour_thumb=quality.colour_thumb(rgb),
                   detail_thumb=quality.detail_thumb(rgb),
                   alpha_thumb=quality.alpha_thumb(normalize.alpha8(dec.pixels)))
        if params.privacy is not None:  # after the scores and hashes (the image as decoded), before the pixels are stored
            p = params.privacy
            found = faces.detect(rgb, p.min_score, p.min_size, p.max_side)
            rgb = faces.blur(rgb, found, p.method, p.strength, p.margin) if found else rgb
            out.update(faces=len(found))
        final = normalize.apply_size_policy(rgb, params.size_policy, params.size, params.background)
        encoded = normalize.encode(final, params.out_format, params.quality)
        # The stored image's channel sums, for ptdm analyze's exact means and stds: PNG keeps the
        # pixels as they are; JPEG and WebP change them, so those are summed as decoded again.
        sums = summary.array_sums(final) if params.out_format == "png" else summary.channel_sums(encoded)
    except (cv2.error, ValueError, RuntimeError) as exc:  # pixels OpenCV decoded but cannot process
        out = _empty()
        out.update(reason=reasons.CORRUPT, detail=f"{dec.format}: {type(exc).__name__}: {exc}"[:300], format=dec.format)
        return out
    except MemoryError:
        out = _empty()
        out.update(reason=reasons.TOO_LARGE, detail=f"{dec.width}x{dec.height}: out of memory while processing",
                   format=dec.format)
        return out
    out.update(
        format=dec.format, width=dec.width, height=dec.height, channels=dec.channels,
        bit_depth=dec.bit_depth, orientation=dec.orientation,
        out_width=int(final.shape[1]), out_height=int(final.shape[0]),
        pixel_sha256=normalize.pixel_sha256(final),
        image=encoded, encoding=params.out_format, decoder_warnings=warnings, pixel_sums=summary.sums_list(sums),
    )
    return out
