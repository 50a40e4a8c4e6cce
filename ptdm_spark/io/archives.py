"""Tar and zip archives: every member becomes a source object (no pyspark here).

``source_uri`` of a member is ``<archive uri>!/<member path>``. A member that is too big or not
an image becomes an error record; an archive that ends early yields the members read so far plus
one ``truncated`` record for the archive itself.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

from ptdm_spark.imaging import reasons


def member_kind(name: str, extensions: tuple[str, ...]) -> bool:
    ext = posixpath.splitext(name)[1].lower().lstrip(".")
    return ext in extensions


def _record(uri: str, fmt: str, **kw: Any) -> dict[str, Any]:
    rec = {
        "source_uri": uri, "source_format": fmt, "content": None, "size_bytes": None, "label": None,
        "rel_path": None, "source_modified_at": None, "error_reason": None, "error_detail": None,
    }
    rec.update(kw)
    return rec


def iter_archive(
    archive_uri: str,
    data: bytes,
    *,
    extensions: tuple[str, ...],
    max_bytes: int,
    dirname_labels: bool,
    archive_label: str | None,
) -> Iterator[dict[str, Any]]:
    """Yield one object record per regular member of a tar or zip archive."""
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        yield from _iter_zip(archive_uri, data, extensions, max_bytes, dirname_labels, archive_label)
    else:
        yield from _iter_tar(archive_uri, data, extensions, max_bytes, dirname_labels, archive_label)


def _label(member: str, dirname_labels: bool, archive_label: str | None) -> str | None:
    if not dirname_labels:
        return None
    parent = posixpath.basename(posixpath.dirname(member.rstrip("/")))
    return parent or archive_label


def _member(uri, fmt, name, size, mtime, read, extensions, max_bytes, dirname_labels, archive_label):
    muri = f"{uri}!/{name}"
    common = dict(size_bytes=size, rel_path=name, source_modified_at=mtime,
                  label=_label(name, dirname_labels, archive_label))
    if not member_kind(name, extensions):
        return _record(muri, fmt, error_reason=reasons.UNSUPPORTED,
                       error_detail="archive member extension is not in ingest.extensions", **common)
    if size > max_bytes:
        return _record(muri, fmt, error_reason=reasons.TOO_LARGE,
                       error_detail=f"{size} bytes exceeds ingest.max_bytes={max_bytes}", **common)
    return _record(muri, fmt, content=read(), **common)


def _iter_tar(uri, data, extensions, max_bytes, dirname_labels, archive_label):
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield _record(uri, "tar", size_bytes=len(data), error_reason=reasons.CORRUPT,
                      error_detail=f"not a readable tar or zip archive ({exc})")
        return
    try:
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield _record(uri, "tar", size_bytes=len(data), error_reason=reasons.TRUNCATED,
                              error_detail=f"archive ends early or is damaged after the members read so far ({exc})")
                return
            if info is None:
                return
            if not info.isfile():
                continue
            mtime = dt.datetime.fromtimestamp(info.mtime, tz=dt.timezone.utc) if info.mtime else None

            def read(info=info):
                f = tar.extractfile(info)
                return f.read() if f else b""

            try:
                yield _member(uri, "tar", info.name, info.size, mtime, read, extensions, max_bytes,
                              dirname_labels, archive_label)
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield _record(f"{uri}!/{info.name}", "tar", size_bytes=info.size, rel_path=info.name,
                              error_reason=reasons.TRUNCATED, error_detail=f"member data ends early ({exc})")
    finally:
        tar.close()


def _iter_zip(uri, data, extensions, max_bytes, dirname_labels, archive_label):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        yield _record(uri, "zip", size_bytes=len(data), error_reason=reasons.CORRUPT,
                      error_detail=f"not a readable zip archive ({exc})")
        return
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            try:
                mtime = dt.datetime(*info.date_time, tzinfo=dt.timezone.utc)
            except ValueError:
                mtime = None
            try:
                yield _member(uri, "zip", info.filename, info.file_size, mtime,
                              lambda info=info: zf.read(info), extensions, max_bytes, dirname_labels, archive_label)
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                yield _record(f"{uri}!/{info.filename}", "zip", size_bytes=info.file_size, rel_path=info.filename,
                              error_reason=reasons.CORRUPT, error_detail=f"member cannot be extracted ({exc})")
