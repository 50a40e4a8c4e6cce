"""Array dumps: MNIST-style IDX files and CIFAR-10/100 python batches (no pyspark here).

Their images become encoded PNG objects in bounded chunks, on the workers, without ever writing
one small file per image.
"""

from __future__ import annotations

import gzip
import io
import pickle
import re
import struct
from dataclasses import dataclass

import numpy as np

from ptdm_spark.imaging.cv import cv2

IDX_IMAGES_RE = re.compile(r"^(.*)-images[-.]idx3-ubyte(\.gz)?$")
CIFAR_RE = re.compile(r"^(data_batch_\d+|test_batch|train|test)$")
CHUNK = 4096  # images per row handed to the workers


class ArrayFormatError(ValueError):
    """The file is not the array dump its name says it is."""


def maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def parse_idx(data: bytes) -> np.ndarray:
    """IDX (big-endian magic: 0, 0, dtype code, ndim; then dims; then data) -> ndarray."""
    data = maybe_gunzip(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ArrayFormatError("not an IDX file (bad magic number)")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in dtypes:
        raise ArrayFormatError(f"IDX: unknown element type 0x{data[2]:02x}")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    dtype = np.dtype(dtypes[data[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) < expected:
        raise ArrayFormatError(f"IDX: truncated ({len(body)} of {expected} data bytes)")
    return np.frombuffer(body[:expected], dtype=dtype).reshape(dims)


class _CifarUnpickler(pickle.Unpickler):
    """Unpickle CIFAR batches without executing arbitrary code: only numpy arrays are allowed."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")


def load_cifar(data: bytes) -> dict:
    try:
        obj = _CifarUnpickler(io.BytesIO(maybe_gunzip(data)), encoding="bytes").load()
    except Exception as exc:  # pickle raises many types for foreign bytes; all mean "not CIFAR"
        raise ArrayFormatError(f"not a CIFAR python batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ArrayFormatError("not a CIFAR python batch (not a dictionary)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


@dataclass(frozen=True)
class ArrayBatch:
    """Images of one array dump as HxWxC uint8, with integer labels and names."""

    images: np.ndarray
    labels: np.ndarray | None
    names: list[str]  # per-image name used in source_uri


def cifar_batch(data: bytes) -> ArrayBatch:
    d = load_cifar(data)
    if "data" not in d:
        raise ArrayFormatError("CIFAR batch without a 'data' entry")
    flat = np.asarray(d["data"], dtype=np.uint8)
    if flat.ndim != 2 or flat.shape[1] != 3072:
        raise ArrayFormatError(f"CIFAR 'data' must be N x 3072, not {flat.shape}")
    images = flat.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = d.get("labels", d.get("fine_labels"))
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in d.get("filenames", [])]
    if len(names) != len(images):
        names = [str(i) for i in range(len(images))]
    return ArrayBatch(images, None if labels is None else np.asarray(labels), names)


def cifar_label_names(meta: bytes) -> list[str]:
    d = load_cifar(meta)
    names = d.get("label_names", d.get("fine_label_names", []))
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def encode_png(image: np.ndarray) -> bytes:
    """Lossless PNG of a grey (HxW) or RGB (HxWx3) uint8 image."""
    arr = image if image.ndim == 2 else image[:, :, ::-1]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return buf.tobytes()
