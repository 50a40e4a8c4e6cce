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


class DecoderMessages:
    """Collects what native decoders print on file descriptor 2 while decoding one image.

    libjpeg ("Corrupt JPEG data: ..."), libpng, libtiff and OpenJPEG write warnings straight to
    the process's stderr, where thousands of them would bury the job's progress lines. Inside
    ``with messages:`` fd 2 points at an in-memory file; ``text()`` returns what was written
    (None when nothing), so that a warning about an image we still accept is kept with it.
    One instance per worker; not for concurrent use from several threads."""

    def __init__(self) -> None:
        self._sink: int | None = None
        self._saved: int | None = None

    def __enter__(self) -> "DecoderMessages":
        if self._sink is None:
            self._sink = os.memfd_create("ptdm-decoder-messages") if hasattr(os, "memfd_create") else _tmpfd()
        os.lseek(self._sink, 0, os.SEEK_SET)
        os.ftruncate(self._sink, 0)
        self._saved = os.dup(2)
        os.dup2(self._sink, 2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = None

    def text(self, limit: int = 1000) -> str | None:
        """What the decoders wrote during the last ``with`` block (at most ``limit`` characters)."""
        size = os.lseek(self._sink, 0, os.SEEK_END)
        if not size:
            return None
        os.lseek(self._sink, 0, os.SEEK_SET)
        raw = os.read(self._sink, min(size, limit * 4)).decode("utf-8", "replace")
        lines = [ln.strip() for ln in raw.splitlines() if ln.strip()]
        return "; ".join(dict.fromkeys(lines))[:limit] or None


def _tmpfd() -> int:
    import tempfile

    fd, path = tempfile.mkstemp(prefix="ptdm-decoder-")
    os.unlink(path)
    return fd


def configure_worker() -> None:
    """Per-worker set-up: one OpenCV thread per Python worker (Spark already runs one per core)."""
    cv2.setNumThreads(1)


__all__ = ["cv2", "configure_worker", "DecoderMessages"]
