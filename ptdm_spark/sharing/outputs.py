"""Where an export's files go: a local folder or an HDFS folder (through WebHDFS, so that the
Python workers of Spark's executors write their own shards without a JVM). No pyspark here.

Every file is written as ``NAME.part`` and renamed when complete, so a file under its final name
is always whole: an interrupted export rerun skips what is there and rewrites the rest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlparse


@dataclass(frozen=True)
class Output:
    """An export's root folder (picklable: shipped to the executors)."""

    root: str  # local path or hdfs://host:port/path
    webhdfs_url: str = ""
    user: str = ""

    @property
    def is_hdfs(self) -> bool:
        return self.root.startswith("hdfs://")

    def _client(self):
        from hdfs import InsecureClient

        return InsecureClient(self.webhdfs_url, user=self.user or None)

    def path(self, rel: str = "") -> str:
        base = urlparse(self.root).path if self.is_hdfs else os.path.abspath(os.path.expanduser(self.root))
        return f"{base.rstrip('/')}/{rel}" if rel else base

    def split(self) -> tuple["Output", str]:
        """(the folder holding this root, the root's name): where a one-file export goes."""
        if self.is_hdfs:
            u = urlparse(self.root)
            path = u.path.rstrip("/")
            folder = Output(f"{u.scheme}://{u.netloc}{os.path.dirname(path) or '/'}", self.webhdfs_url, self.user)
            return folder, os.path.basename(path)
        path = self.path()
        return Output(os.path.dirname(path) or ".", self.webhdfs_url, self.user), os.path.basename(path)

    def exists(self, rel: str = "") -> bool:
        if self.is_hdfs:
            return self._client().status(self.path(rel), strict=False) is not None
        return os.path.exists(self.path(rel))

    def size(self, rel: str) -> int | None:
        if self.is_hdfs:
            st = self._client().status(self.path(rel), strict=False)
            return None if st is None else int(st["length"])
        try:
            return os.path.getsize(self.path(rel))
        except OSError:
            return None

    def is_dir(self, rel: str = "") -> bool:
        if self.is_hdfs:
            st = self._client().status(self.path(rel), strict=False)
            return st is not None and st["type"] == "DIRECTORY"
        return os.path.isdir(self.path(rel))

    def write(self, rel: str, data: bytes) -> None:
        """Write ``data`` as ``rel`` (complete or not at all)."""
        with self.open_write(rel) as f:
            f.write(data)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator:
        """A binary stream that becomes ``rel`` when the block ends without an error."""
        final, part = self.path(rel), self.path(rel) + ".part"
        if self.is_hdfs:
            client = self._client()
            with client.write(part, overwrite=True) as f:
                yield f
            client.delete(final)
            client.rename(part, final)
            return
        os.makedirs(os.path.dirname(final), exist_ok=True)
        with open(part, "wb") as f:
            yield f
        os.replace(part, final)

    @contextlib.contextmanager
    def open_read(self, rel: str) -> Iterator:
        if self.is_hdfs:
            with self._client().read(self.path(rel)) as f:
                yield f
        else:
            with open(self.path(rel), "rb") as f:
                yield f

    def files(self) -> list[str]:
        """Every file under the root, relative, sorted (``.part`` leftovers included)."""
        out = []
        if self.is_hdfs:
            base = self.path()
            for folder, _, names in self._client().walk(base):
                out += [f"{folder}/{n}"[len(base) + 1:] for n in names]
        else:
            base = self.path()
            for folder, _, names in os.walk(base):
                out += [os.path.relpath(os.path.join(folder, n), base) for n in names]
        return sorted(out)

    def remove(self, rel: str) -> None:
        if self.is_hdfs:
            self._client().delete(self.path(rel))
        elif os.path.exists(self.path(rel)):
            os.remove(self.path(rel))

    def sha256(self, rel: str) -> str:
        h = hashlib.sha256()
        with self.open_read(rel) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
