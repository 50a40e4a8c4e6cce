"""File work for backup and restore through Hadoop's ``FileSystem`` in the driver's JVM (the
gateway Spark already has), so that a local folder and ``hdfs://`` work alike on either side.

The SHA-256 of a file is computed in the JVM while it is read (``DigestInputStream``): a copy
reads its source once and returns the digest of the bytes it wrote. Local files are read and
written through the raw local filesystem: no ``.crc`` side files, and a damaged byte shows up as
a SHA-256 mismatch rather than as Hadoop's own checksum exception.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BUFFER = 1 << 20


def qualify(location: str) -> str:
    """A local path as an absolute ``file:`` URI (so a cluster's default filesystem does not
    claim it); any ``scheme://`` URI unchanged, without a trailing slash."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", location):
        return location.rstrip("/") or location
    return "file://" + os.path.abspath(os.path.expanduser(location))


@dataclass(frozen=True)
class FileInfo:
    rel: str  # path under the folder listed, with '/'
    size: int
    mtime_ms: int


class Store:
    """One Hadoop filesystem reached through the session's JVM."""

    def __init__(self, spark: "SparkSession", uri: str):
        self.spark, self.jvm = spark, spark._jvm
        self.conf = spark._jsc.hadoopConfiguration()
        self.root = qualify(uri)
        fs = self.jvm.org.apache.hadoop.fs.Path(self.root).getFileSystem(self.conf)
        if self.root.startswith("file:"):
            # LocalFileSystem (or Hive's ProxyLocalFileSystem, with the Hive catalog) is a
            # ChecksumFileSystem: its raw filesystem reads and writes the bytes alone.
            try:
                fs = fs.getRawFileSystem()
            except Exception:  # noqa: BLE001 - py4j: not a ChecksumFileSystem
                pass
        self.fs = fs

    def path(self, rel: str = "") -> Any:
        return self.jvm.org.apache.hadoop.fs.Path(f"{self.root}/{rel}" if rel else self.root)

    def uri(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def exists(self, rel: str = "") -> bool:
        return bool(self.fs.exists(self.path(rel)))

    def is_dir(self, rel: str = "") -> bool:
        p = self.path(rel)
        return bool(self.fs.exists(p)) and bool(self.fs.getFileStatus(p).isDirectory())

    def size(self, rel: str) -> int | None:
        p = self.path(rel)
        if not self.fs.exists(p):
            return None
        st = self.fs.getFileStatus(p)
        return None if st.isDirectory() else int(st.getLen())

    def children(self, rel: str = "") -> list[tuple[str, bool]]:
        """(name, is_dir) of the entries of a folder, sorted; empty when it does not exist."""
        p = self.path(rel)
        if not self.fs.exists(p):
            return []
        return sorted((s.getPath().getName(), bool(s.isDirectory())) for s in self.fs.listStatus(p))

    def files(self, rel: str = "") -> list[FileInfo]:
        """Every file under the folder ``rel``, recursively, with paths relative to it."""
        p = self.path(rel)
        if not self.fs.exists(p):
            return []
        base = self.fs.getFileStatus(p).getPath().toUri().getPath().rstrip("/")
        it = self.fs.listFiles(p, True)
        out = []
        while it.hasNext():
            st = it.next()
            full = st.getPath().toUri().getPath()
            out.append(FileInfo(full[len(base) + 1:], int(st.getLen()), int(st.getModificationTime())))
        return sorted(out, key=lambda f: f.rel)

    def read(self, rel: str) -> bytes:
        stream = self.fs.open(self.path(rel))
        try:
            return bytes(self.jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def write(self, rel: str, data: bytes) -> None:
        """Write a small file whole: a temporary name, then a rename."""
        tmp = f"{rel}.{uuid.uuid4().hex[:8]}.tmp"
        out = self.fs.create(self.path(tmp), True)
        try:
            out.write(bytearray(data))
        finally:
            out.close()
        self.rename(tmp, rel, replace=True)

    def mkdirs(self, rel: str) -> None:
        self.fs.mkdirs(self.path(rel))

    def rename(self, src: str, dst: str, replace: bool = False) -> None:
        d = self.path(dst)
        if replace and self.fs.exists(d):
            self.fs.delete(d, False)
        self.fs.mkdirs(d.getParent())
        if not self.fs.rename(self.path(src), d):
            raise OSError(f"cannot rename {self.uri(src)} to {self.uri(dst)}")

    def delete(self, rel: str, recursive: bool = True) -> None:
        p = self.path(rel)
        if self.fs.exists(p):
            self.fs.delete(p, recursive)

    def sha256(self, rel: str) -> str:
        """SHA-256 (hex) of one file, read in the JVM."""
        md = self.jvm.java.security.MessageDigest.getInstance("SHA-256")
        stream = self.jvm.java.security.DigestInputStream(self.fs.open(self.path(rel)), md)
        sink = self.jvm.org.apache.commons.io.output.NullOutputStream.INSTANCE
        self.jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, sink, BUFFER, True)
        return bytes(md.digest()).hex()

    def copy_to(self, rel: str, dest: "Store", dest_rel: str) -> tuple[str, int]:
        """Copy one file to ``dest`` (complete under its name or absent: a temporary name, then a
        rename); returns (SHA-256 of the bytes read, bytes)."""
        md = self.jvm.java.security.MessageDigest.getInstance("SHA-256")
        stream = self.jvm.java.security.DigestInputStream(self.fs.open(self.path(rel)), md)
        tmp = f"{dest_rel}.{uuid.uuid4().hex[:8]}.tmp"
        out = dest.fs.create(dest.path(tmp), True)
        self.jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, out, BUFFER, True)
        size = dest.size(tmp)
        dest.rename(tmp, dest_rel, replace=True)
        return bytes(md.digest()).hex(), int(size or 0)


def first_line(exc: BaseException) -> str:
    """The JVM's exception line of a py4j error (or the Python one), at most 200 characters."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    line = next((ln for ln in lines if "Exception" in ln or "Error" in ln), lines[0] if lines else type(exc).__name__)
    return line[:200]
