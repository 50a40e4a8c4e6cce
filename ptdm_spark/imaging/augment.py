"""Seeded image augmentation: numpy/OpenCV only (never pyspark).

A *recipe* is a list of operations, each with the ranges its parameters are drawn from and a
probability. :func:`augment` draws the concrete parameters of every operation from a generator
seeded by ``(seed, source image_id, copy index)`` alone, applies them in order and encodes the
result, so the same recipe, seed and source give the same bytes wherever and however often it
runs (Spark's partitioning never enters). The drawn parameters are returned with the bytes: they
are the lineage of the copy.

Every operation is also a plain function of an RGB ``uint8`` array with explicit parameters
(:func:`hflip`, :func:`rotate`, ...), tested with known answers (two flips are the identity,
a rotation by 0 degrees is the identity, a jitter of zero strength is the identity, the noise has
the configured standard deviation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ptdm_spark.imaging.cv import cv2

# --- the operations on pixels (RGB uint8, H x W x 3) ---------------------------------------------


def hflip(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1])


def vflip(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[::-1])


def rotate(rgb: np.ndarray, degrees: float, fill: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """Rotate about the centre by ``degrees`` (counter-clockwise), same size, corners ``fill``."""
    if degrees == 0:
        return rgb.copy()
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(degrees), 1.0)
    return cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(int(v) for v in fill))


def resized_crop(rgb: np.ndarray, x: int, y: int, w: int, h: int, out_w: int, out_h: int) -> np.ndarray:
    """The box (x, y, w, h) resized to out_w x out_h."""
    box = rgb[y : y + h, x : x + w]
    if (w, h) == (out_w, out_h):
        return np.ascontiguousarray(box)
    shrink = out_w * out_h < w * h
    return cv2.resize(np.ascontiguousarray(box), (out_w, out_h),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def color_jitter(rgb: np.ndarray, brightness: float = 1.0, contrast: float = 1.0, saturation: float = 1.0,
                 hue: float = 0.0) -> np.ndarray:
    """Brightness, contrast and saturation factors (1 = unchanged) and a hue shift in turns
    (-0.5..0.5; 0 = unchanged), applied in that order, as torchvision's ColorJitter defines them."""
    out = rgb
    if brightness != 1.0:
        out = _u8(out.astype(np.float32) * brightness)
    if contrast != 1.0:
        grey_mean = float(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).mean())
        out = _u8(grey_mean + (out.astype(np.float32) - grey_mean) * contrast)
    if saturation != 1.0:
        grey = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY).astype(np.float32)[:, :, None]
        out = _u8(grey + (out.astype(np.float32) - grey) * saturation)
    if hue != 0.0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV_FULL)
        shift = int(round(hue * 256)) % 256
        hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + shift) % 256).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)
    return out if out is not rgb else rgb.copy()


def gaussian_noise(rgb: np.ndarray, std: float, noise_seed: int) -> np.ndarray:
    """Add N(0, std) noise (in 0..255 units) from its own seeded generator, rounded and clipped."""
    if std == 0:
        return rgb.copy()
    noise = np.random.default_rng(noise_seed).normal(0.0, std, rgb.shape).astype(np.float32)
    return _u8(rgb.astype(np.float32) + noise)


def gaussian_blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return rgb.copy()
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(rgb, (k, k), sigmaX=float(sigma), sigmaY=float(sigma),
                            borderType=cv2.BORDER_REFLECT_101)


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {rgb.shape} image as JPEG")
    return buf.tobytes()


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {rgb.shape} image as PNG")
    return buf.tobytes()


def decode_rgb(data: bytes) -> np.ndarray | None:
    """Encoded bytes -> RGB uint8 (None when they do not decode)."""
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def jpeg_recompress(rgb: np.ndarray, quality: int) -> np.ndarray:
    out = decode_rgb(jpeg_bytes(rgb, quality))
    assert out is not None  # our own JPEG always decodes
    return out


# --- the recipe ----------------------------------------------------------------------------------


class RecipeError(ValueError):
    """A recipe that cannot be used (unknown op, bad range): the message names the op and key."""


def _range(spec: Mapping[str, Any], key: str, default: Any, lo: float, hi: float, where: str) -> tuple[float, float]:
    """A key given as one number v (-> the op's own symmetric/zero-based range) or [a, b]."""
    v = spec.get(key, default)
    if isinstance(v, bool) or v is None:
        raise RecipeError(f"{where}.{key}: expected a number or [low, high], got {v!r}")
    if isinstance(v, (int, float)):
        a, b = float(v), float(v)
    elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        a, b = float(v[0]), float(v[1])
    else:
        raise RecipeError(f"{where}.{key}: expected a number or [low, high], got {v!r}")
    if a > b or a < lo or b > hi:
        raise RecipeError(f"{where}.{key}: {v!r} must lie within [{lo:g}, {hi:g}] with low <= high")
    return a, b


@dataclass(frozen=True)
class Op:
    """One operation of a recipe: its kind, probability and the ranges its parameters come from."""

    kind: str
    p: float
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def _jitter_range(spec: Mapping[str, Any], key: str, where: str) -> tuple[float, float]:
    """torchvision's convention: a strength s means a factor in [1 - s, 1 + s]; [a, b] is the factor range."""
    v = spec.get(key, 0)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if v < 0:
            raise RecipeError(f"{where}.{key}: a strength must be >= 0, got {v!r}")
        return max(0.0, 1.0 - float(v)), 1.0 + float(v)
    return _range(spec, key, 0, 0.0, 100.0, where)


# op name -> (allowed keys, parser of the ranges)
def _parse_op(i: int, spec: Any) -> Op:
    where = f"ops[{i}]"
    if not isinstance(spec, Mapping) or "op" not in spec:
        raise RecipeError(f"{where}: expected a mapping with an 'op' key, got {spec!r}")
    kind = str(spec["op"])
    where = f"ops[{i}] ({kind})"
    allowed = {"op", "p", *OP_KEYS.get(kind, ())}
    if kind not in OP_KEYS:
        raise RecipeError(f"{where}: unknown op (known: {', '.join(OP_KEYS)})")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise RecipeError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(allowed - {'op'}))})")
    p = spec.get("p", 0.5 if kind in ("hflip", "vflip") else 1.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise RecipeError(f"{where}.p: a probability in [0, 1], got {p!r}")
    r: dict[str, tuple[float, float]] = {}
    if kind == "rotate":
        d = spec.get("degrees", 0)
        r["degrees"] = (-float(d), float(d)) if isinstance(d, (int, float)) and not isinstance(d, bool) \
            else _range(spec, "degrees", 0, -360, 360, where)
    elif kind == "random_resized_crop":
        r["scale"] = _range(spec, "scale", [0.08, 1.0], 1e-6, 1.0, where)
        r["ratio"] = _range(spec, "ratio", [3 / 4, 4 / 3], 1e-3, 1e3, where)
    elif kind == "color_jitter":
        for k in ("brightness", "contrast", "saturation"):
            r[k] = _jitter_range(spec, k, where)
        h = spec.get("hue", 0)
        r["hue"] = (-float(h), float(h)) if isinstance(h, (int, float)) and not isinstance(h, bool) \
            else _range(spec, "hue", 0, -0.5, 0.5, where)
        if not -0.5 <= r["hue"][0] <= r["hue"][1] <= 0.5:
            raise RecipeError(f"{where}.hue: must lie within [-0.5, 0.5]")
    elif kind == "gaussian_noise":
        r["std"] = _range(spec, "std", 0, 0.0, 255.0, where)
    elif kind == "gaussian_blur":
        r["sigma"] = _range(spec, "sigma", [0.1, 2.0], 0.0, 50.0, where)
    elif kind == "jpeg":
        r["quality"] = _range(spec, "quality", [75, 95], 1, 100, where)
    return Op(kind, float(p), r)


OP_KEYS: dict[str, tuple[str, ...]] = {
    "hflip": (),
    "vflip": (),
    "rotate": ("degrees",),
    "random_resized_crop": ("scale", "ratio"),
    "color_jitter": ("brightness", "contrast", "saturation", "hue"),
    "gaussian_noise": ("std",),
    "gaussian_blur": ("sigma",),
    "jpeg": ("quality",),
}


@dataclass(frozen=True)
class Recipe:
    """A named, seeded list of operations (see ``conf/augment/basic.yaml``)."""

    name: str
    seed: int
    copies: int
    ops: tuple[Op, ...]

    @classmethod
    def from_mapping(cls, data: Any, default_name: str = "recipe") -> "Recipe":
        if not isinstance(data, Mapping):
            raise RecipeError("a recipe is a mapping with keys name, seed, copies, ops")
        unknown = sorted(set(data) - {"name", "seed", "copies", "ops", "description"})
        if unknown:
            raise RecipeError(f"{unknown[0]}: unknown recipe key (known: name, seed, copies, ops, description)")
        name = str(data.get("name") or default_name)
        seed, copies = data.get("seed", 0), data.get("copies", 1)
        for key, v, lo in (("seed", seed, 0), ("copies", copies, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise RecipeError(f"{key}: expected an integer >= {lo}, got {v!r}")
        ops = data.get("ops")
        if not isinstance(ops, list) or not ops:
            raise RecipeError("ops: expected a non-empty list of operations")
        return cls(name, int(seed), int(copies), tuple(_parse_op(i, s) for i, s in enumerate(ops)))

    @classmethod
    def from_yaml(cls, text: str, default_name: str = "recipe") -> "Recipe":
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RecipeError(f"not valid YAML ({str(exc).splitlines()[0]})") from None
        return cls.from_mapping(data, default_name)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "seed": self.seed, "copies": self.copies,
                           "ops": [{"op": o.kind, "p": o.p, **{k: list(v) for k, v in o.ranges.items()}}
                                   for o in self.ops]}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Recipe":
        d = json.loads(text)
        return cls(d["name"], d["seed"], d["copies"],
                   tuple(Op(o["op"], o["p"], {k: tuple(v) for k, v in o.items() if k not in ("op", "p")})
                         for o in d["ops"]))


def rng_for(seed: int, source_id: str, copy: int) -> np.random.Generator:
    """The generator of one copy: a function of (seed, source image_id, copy index) only."""
    digest = hashlib.sha256(f"{seed}:{source_id}:{copy}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big"))


def _draw(op: Op, rng: np.random.Generator, h: int, w: int) -> dict[str, Any] | None:
    """The concrete parameters of ``op`` for an h x w image, or None when it is not applied.
    Every op takes its coin first, so the draws of later ops do not depend on earlier outcomes
    other than through the generator's fixed sequence."""
    applied = rng.random() < op.p
    r = op.ranges

    def u(key: str) -> float:
        a, b = r[key]
        return float(rng.uniform(a, b)) if b > a else a

    if op.kind in ("hflip", "vflip"):
        params: dict[str, Any] = {}
    elif op.kind == "rotate":
        params = {"degrees": round(u("degrees"), 4)}
    elif op.kind == "random_resized_crop":
        params = _crop_box(rng, h, w, r["scale"], r["ratio"])
    elif op.kind == "color_jitter":
        params = {k: round(u(k), 4) for k in ("brightness", "contrast", "saturation", "hue")}
    elif op.kind == "gaussian_noise":
        params = {"std": round(u("std"), 4), "noise_seed": int(rng.integers(0, 2**63 - 1))}
    elif op.kind == "gaussian_blur":
        params = {"sigma": round(u("sigma"), 4)}
    elif op.kind == "jpeg":
        a, b = r["quality"]
        params = {"quality": int(rng.integers(int(a), int(b) + 1))}
    else:  # pragma: no cover - the parser admits only known ops
        raise RecipeError(f"unknown op {op.kind!r}")
    return params if applied else None


def _crop_box(rng: np.random.Generator, h: int, w: int, scale: tuple[float, float],
              ratio: tuple[float, float]) -> dict[str, int]:
    """torchvision's RandomResizedCrop box: area in ``scale`` x image area, aspect ratio drawn
    log-uniformly in ``ratio``; ten tries, then the centre crop of the clamped ratio."""
    area = h * w
    lo, hi = np.log(ratio[0]), np.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        ar = float(np.exp(rng.uniform(lo, hi)))
        cw, ch = int(round(np.sqrt(target * ar))), int(round(np.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            return {"x": x, "y": y, "w": cw, "h": ch}
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, int(round(w / ratio[0]))
    elif in_ratio > ratio[1]:
        ch, cw = h, int(round(h * ratio[1]))
    else:
        cw, ch = w, h
    return {"x": (w - cw) // 2, "y": (h - ch) // 2, "w": cw, "h": ch}


def apply_op(kind: str, params: Mapping[str, Any], rgb: np.ndarray) -> np.ndarray:
    """One op with its concrete parameters (as :func:`augment` records them)."""
    if kind == "hflip":
        return hflip(rgb)
    if kind == "vflip":
        return vflip(rgb)
    if kind == "rotate":
        return rotate(rgb, params["degrees"])
    if kind == "random_resized_crop":
        h, w = rgb.shape[:2]
        return resized_crop(rgb, params["x"], params["y"], params["w"], params["h"], w, h)
    if kind == "color_jitter":
        return color_jitter(rgb, params["brightness"], params["contrast"], params["saturation"], params["hue"])
    if kind == "gaussian_noise":
        return gaussian_noise(rgb, params["std"], params["noise_seed"])
    if kind == "gaussian_blur":
        return gaussian_blur(rgb, params["sigma"])
    if kind == "jpeg":
        return jpeg_recompress(rgb, params["quality"])
    raise RecipeError(f"unknown op {kind!r}")


@dataclass(frozen=True)
class Augmented:
    """One augmented copy: its bytes and how they were made (or why not, in ``error``)."""

    image: bytes | None
    encoding: str | None
    width: int | None
    height: int | None
    params: str | None  # JSON: [{"op": ..., **drawn parameters}] of the ops applied, in order
    error: str | None = None


def augment(data: bytes, recipe: Recipe, seed: int, source_id: str, copy: int) -> Augmented:
    """Copy ``copy`` of the image ``data`` (encoded bytes of ``source_id``) by ``recipe``.

    Never raises for bad input: an image that does not decode returns ``error``. The output is
    PNG (lossless, the same bytes for the same pixels), or the JPEG bytes themselves when the
    last op applied is a JPEG re-compression.
    """
    rgb = decode_rgb(data)
    if rgb is None:
        return Augmented(None, None, None, None, None, "does not decode")
    rng = rng_for(seed, source_id, copy)
    h, w = rgb.shape[:2]
    applied: list[dict[str, Any]] = []
    last_jpeg: bytes | None = None
    for op in recipe.ops:
        params = _draw(op, rng, h, w)
        if params is None:
            continue
        applied.append({"op": op.kind, **params})
        if op.kind == "jpeg":
            last_jpeg = jpeg_bytes(rgb, params["quality"])
            out = decode_rgb(last_jpeg)
            assert out is not None
            rgb = out
        else:
            rgb = apply_op(op.kind, params, rgb)
            last_jpeg = None
    if last_jpeg is not None:
        blob, encoding = last_jpeg, "jpeg"
    else:
        blob, encoding = png_bytes(rgb), "png"
    return Augmented(blob, encoding, int(rgb.shape[1]), int(rgb.shape[0]),
                     json.dumps(applied, sort_keys=True, separators=(",", ":")))


def image_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


OPS: dict[str, Callable[..., np.ndarray]] = {
    "hflip": hflip, "vflip": vflip, "rotate": rotate, "random_resized_crop": resized_crop,
    "color_jitter": color_jitter, "gaussian_noise": gaussian_noise, "gaussian_blur": gaussian_blur,
    "jpeg": jpeg_recompress,
}
