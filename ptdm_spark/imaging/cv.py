"""Import OpenCV once, quietly, with its safety limits set before the import reads them."""

from __future__ import annotations

import os

# OpenCV reads these once, at import. Our own header check runs first; these are the backstop for
# formats whose header we do not parse.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 30))
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402

try:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
except AttributeError:  # pragma: no cover - older builds without the logging module
    pass


def configure_worker() -> None:
    """Per-worker set-up: one OpenCV thread per Python worker (Spark already runs one per core)."""
    cv2.setNumThreads(1)


__all__ = ["cv2", "configure_worker"]
