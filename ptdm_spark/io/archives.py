"""Tar and zip archives: every member becomes a source object (no pyspark here).

``source_uri`` of a member is ``<archive uri>!/<member path>``. A member that is too big or not
an image becomes an error record; an archive that ends early yields the members read so far plus
one ``truncated`` record for the archive itself.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import posixpath
import tarfile
import zipfile
from collections.abc import Iterator
from typing import Any

from ptdm_spark.imaging import reasons


def member_kind(name: str, extensions: tuple[str, ...]) -> bool:
    """True when the member is to be read: every member when ``extensions`` is empty (its content
    decides), else those whose extension is listed (case-insensitive)."""
    if not extensions:
        return True
    ext = posixpath.splitext(name)[1].lower().lstrip(".")
    return ext in {e.lower() for e in extensions}


# The columns of a source object record, in ``schemas.OBJECTS``' order (tests/unit/test_declarations.py
# pins the two together): what every reader on the workers yields.
OBJECT_COLUMNS = ("source_uri", "source_format", "content", "size_bytes", "label", "rel_path",
                  "source_modified_at", "error_reason", "error_detail")


def _record(uri: str, fmt: str, **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = dict.fromkeys(OBJECT_COLUMNS)
    rec.update(source_uri=uri, source_format=fmt, **kw)
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
    """The member's folder name; the archive's label for a member at the top, or one whose path
    climbs out of the archive (``../../x.png``: '..' is never a label)."""
    if not dirname_labels:
        return None
    parts = [p for p in member.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts or len(parts) < 2:
        return archive_label
    return parts[-2]


def _member(uri, fmt, name, size, mtime, read, extensions, max_bytes, dirname_labels, archive_label):
    muri = f"{uri}!/{name}"
    common = dict(size_bytes=size, rel_path=name, source_modified_at=mtime,
                  label=_label(name, dirname_labels, archive_label))
    if not member_kind(name, extensions):
        return _record(muri, fmt, error_reason=reasons.SKIPPED,
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
    with tar:
        infos, damage = [], None
        while True:  # headers first (links need the whole table); a damaged tail ends the list
            try:
                info = tar.next()
            except (tarfile.TarError, OSError, EOFError) as exc:
                damage = exc
                break
            if info is None:
                break
            if not info.isdir():
                infos.append(info)
        by_name = {_norm(i.name): i for i in infos}
        for info in infos:
            mtime = dt.datetime.fromtimestamp(info.mtime, tz=dt.timezone.utc) if info.mtime else None
            if info.islnk() or info.issym():  # read as the member it points to, inside the archive
                target = _link_target(info, by_name)
                if target is None:
                    yield _record(f"{uri}!/{info.name}", "tar", size_bytes=0, rel_path=info.name,
                                  source_modified_at=mtime, error_reason=reasons.SKIPPED,
                                  error_detail=f"link to {info.linkname!r}, which is not a file in this archive")
                    continue
                info = _linked(info, target)
            elif not info.isfile():
                yield _record(f"{uri}!/{info.name}", "tar", size_bytes=0, rel_path=info.name, source_modified_at=mtime,
                              error_reason=reasons.UNSUPPORTED,
                              error_detail="archive member is not a file (device, fifo or other special member)")
                continue

            def read(info=info):
                f = tar.extractfile(info)
                return f.read() if f else b""

            try:
                yield _member(uri, "tar", info.name, info.size, mtime, read, extensions, max_bytes,
                              dirname_labels, archive_label)
            except (tarfile.TarError, OSError, EOFError) as exc:
                yield _record(f"{uri}!/{info.name}", "tar", size_bytes=info.size, rel_path=info.name,
                              error_reason=reasons.TRUNCATED, error_detail=f"member data ends early ({exc})")
        if damage is not None:
            yield _record(uri, "tar", size_bytes=len(data), error_reason=reasons.TRUNCATED,
                          error_detail=f"archive ends early or is damaged after the members read so far ({damage})")
        elif not infos:
            yield _record(uri, "tar", size_bytes=len(data), error_reason=reasons.EMPTY,
                          error_detail="the archive holds no files")


def _norm(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")) if name else name


def _link_target(link: tarfile.TarInfo, by_name: dict[str, tarfile.TarInfo], depth: int = 0):
    """The regular member a hard or symbolic link points to inside the archive, or None (outside
    the archive, missing, or a chain longer than 16)."""
    if depth > 16:
        return None
    if link.issym():
        joined = posixpath.join(posixpath.dirname(link.name), link.linkname)
        if link.linkname.startswith("/"):
            return None
        name = posixpath.normpath(joined)
    else:
        name = _norm(link.linkname)
    if name.startswith(".."):
        return None
    target = by_name.get(name)
    if target is None:
        return None
    if target.islnk() or target.issym():
        return _link_target(target, by_name, depth + 1)
    return target if target.isfile() else None


def _linked(link: tarfile.TarInfo, target: tarfile.TarInfo) -> tarfile.TarInfo:
    """The target's data under the link's name (the link is its own source object)."""
    out = copy.copy(target)
    out.name = link.name
    return out


def _iter_zip(uri, data, extensions, max_bytes, dirname_labels, archive_label):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        yield _record(uri, "zip", size_bytes=len(data), error_reason=reasons.CORRUPT,
                      error_detail=f"not a readable zip archive ({exc})")
        return
    with zf:
        files = [i for i in zf.infolist() if not i.is_dir()]
        if not files:
            yield _record(uri, "zip", size_bytes=len(data), error_reason=reasons.EMPTY,
                          error_detail="the archive holds no files")
        for info in files:
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
