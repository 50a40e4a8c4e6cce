"""Walk what the user pointed at: every file, whatever its name (no pyspark import at module level).

Spark's file sources cannot be trusted with a user's folder: their listing hides names that start
with ``_`` or ``.`` (``_DSC0001.JPG``, a camera's ``_camera/`` folder), treats ``*?[]{}\\`` in
names as glob syntax, and fails the whole scan on a name with a colon. So the driver lists every
source itself: local folders with ``os.scandir`` (following symbolic links, cutting loops), any
other Hadoop filesystem through the Hadoop ``FileSystem`` API. Every entry found is accounted for:
a file to read, or a problem (a dangling link, a loop, a folder that cannot be listed, a hidden
name the config skips) that becomes a ``rejects`` row.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ptdm_spark.imaging import reasons

LOCAL_PREFIX = "file:"


@dataclass(frozen=True)
class Entry:
    """One thing found under a source: a file, or a problem with a reason code."""

    uri: str  # file:/abs/path or hdfs://host:port/path, never percent-encoded
    root: str  # the source it was found under (a folder, or the file's own folder)
    length: int = 0
    mtime_ms: int | None = None
    reason: str | None = None  # set: this entry cannot be read (see ``detail``)
    detail: str | None = None

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def rel_path(self) -> str:
        prefix = self.root.rstrip("/") + "/"
        return self.uri[len(prefix):] if self.uri.startswith(prefix) else self.name


def is_local(uri: str) -> bool:
    return uri.startswith(LOCAL_PREFIX)


def local_path(uri: str) -> str:
    """``file:/a/b`` (or ``file:///a/b``) -> ``/a/b``."""
    path = uri[len(LOCAL_PREFIX):]
    return "/" + path.lstrip("/") if path.startswith("//") else path


def local_uri(path: str) -> str:
    return LOCAL_PREFIX + os.path.abspath(path)


def hidden(name: str) -> bool:
    return name.startswith(".")


def walk_local(root: str, skip_hidden: bool = False) -> Iterator[Entry]:
    """Every file under the local path ``root`` (or ``root`` itself when it is a file), sorted.

    Symbolic links are followed; a link to a folder that is already being listed (a loop such as
    ``sub/loop -> ..``, or a second way into the same folder) is reported once instead of being
    walked again. A dangling link, a folder that cannot be listed and anything that is not a
    regular file become problem entries."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        yield _file_entry(root, os.path.dirname(root), skip_hidden)
        return
    root_uri = local_uri(root)
    seen: dict[tuple[int, int], str] = {}
    st = os.stat(root)
    seen[(st.st_dev, st.st_ino)] = root
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Entry(local_uri(folder), root_uri, reason=reasons.UNREADABLE,
                        detail=f"cannot list this folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for child in children:
            path = child.path
            try:
                is_dir = child.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if child.is_symlink() and not os.path.exists(path):
                yield Entry(local_uri(path), root_uri, reason=reasons.UNREADABLE,
                            detail=f"dangling symbolic link to {os.readlink(path)!r}")
                continue
            if is_dir:
                try:
                    cst = os.stat(path)
                except OSError as exc:
                    yield Entry(local_uri(path), root_uri, reason=reasons.UNREADABLE,
                                detail=f"cannot open this folder: {exc.strerror or exc}")
                    continue
                key = (cst.st_dev, cst.st_ino)
                if key in seen:
                    what = "a loop back to" if _is_ancestor(seen[key], path) else "a second way into"
                    yield Entry(local_uri(path), root_uri, reason=reasons.SKIPPED,
                                detail=f"symbolic link to folder {os.readlink(path)!r} is {what} "
                                       f"{seen[key]}, which is listed once")
                    continue
                seen[key] = path
                subfolders.append(path)
            else:
                yield _file_entry(path, root, skip_hidden, root_uri)
        stack.extend(reversed(subfolders))


def _is_ancestor(folder: str, path: str) -> bool:
    return (os.path.dirname(path).rstrip("/") + "/").startswith(folder.rstrip("/") + "/")


def _file_entry(path: str, root: str, skip_hidden: bool, root_uri: str | None = None) -> Entry:
    root_uri = root_uri or local_uri(root)
    uri = local_uri(path)
    try:
        st = os.stat(path)
    except OSError as exc:
        return Entry(uri, root_uri, reason=reasons.UNREADABLE, detail=f"cannot read: {exc.strerror or exc}")
    if not stat.S_ISREG(st.st_mode):
        kind = "fifo" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
        return Entry(uri, root_uri, st.st_size, int(st.st_mtime * 1000), reasons.UNSUPPORTED,
                     f"not a regular file ({kind})")
    if skip_hidden and hidden(os.path.basename(path)):
        return Entry(uri, root_uri, st.st_size, int(st.st_mtime * 1000), reasons.SKIPPED,
                     "hidden file skipped (ingest.skip_hidden)")
    return Entry(uri, root_uri, st.st_size, int(st.st_mtime * 1000))


def walk_hadoop(spark: Any, root: str, skip_hidden: bool = False) -> Iterator[Entry]:
    """Every file under ``root`` on a Hadoop filesystem (hdfs://...), hidden names included."""
    jvm = spark._jvm
    path = jvm.org.apache.hadoop.fs.Path(root)
    fs = path.getFileSystem(spark._jsc.hadoopConfiguration())
    status = fs.getFileStatus(path)
    if not status.isDirectory():
        parent = status.getPath().getParent().toString()
        yield _hadoop_entry(status, parent, skip_hidden)
        return
    root_uri = status.getPath().toString()
    stack = [status.getPath()]
    while stack:
        folder = stack.pop()
        try:
            children = sorted(fs.listStatus(folder), key=lambda s: s.getPath().getName())
        except Exception as exc:  # noqa: BLE001 - py4j carries the JVM's IOException
            yield Entry(folder.toString(), root_uri, reason=reasons.UNREADABLE,
                        detail=f"cannot list this folder: {str(exc).splitlines()[0][:200]}")
            continue
        subfolders = []
        for child in children:
            if child.isDirectory():
                subfolders.append(child.getPath())
            else:
                yield _hadoop_entry(child, root_uri, skip_hidden)
        stack.extend(reversed(subfolders))


def _hadoop_entry(status: Any, root_uri: str, skip_hidden: bool) -> Entry:
    uri = status.getPath().toString()
    length, mtime = int(status.getLen()), int(status.getModificationTime())
    if skip_hidden and hidden(status.getPath().getName()):
        return Entry(uri, root_uri, length, mtime, reasons.SKIPPED, "hidden file skipped (ingest.skip_hidden)")
    return Entry(uri, root_uri, length, mtime)


def read_local(uri: str) -> bytes:
    """The bytes of a local file (raises OSError)."""
    with open(local_path(uri), "rb") as f:
        return f.read()
