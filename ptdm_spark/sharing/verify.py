"""``ptdm export verify``: re-check an export against its ``MANIFEST.sha256`` (no Spark)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field

from ptdm_spark.errors import UsageError
from ptdm_spark.sharing import formats
from ptdm_spark.sharing.outputs import Output

MARKER = ".ptdm-export"  # an export under way (same bytes as its release.json)


@dataclass
class Verdict:
    checked: int = 0
    problems: list[str] = field(default_factory=list)


def verify(out: Output) -> Verdict:
    """Every file listed in MANIFEST.sha256 exists with its hash, and no other file is there."""
    if os.path.isfile(out.path()) if not out.is_hdfs else (out.exists() and not out.is_dir()):
        return _verify_zip_file(out)
    if not out.exists(formats.SHA_FILE):
        raise UsageError(f"{out.root}: no {formats.SHA_FILE} (not an export, or an unfinished one)")
    with out.open_read(formats.SHA_FILE) as f:
        listed = formats.parse_sha_manifest(f.read().decode())
    v = Verdict()
    present = set(out.files())
    for rel, digest in sorted(listed.items()):
        v.checked += 1
        if rel not in present:
            v.problems.append(f"missing: {rel}")
        elif out.sha256(rel) != digest:
            v.problems.append(f"changed: {rel}")
    for rel in sorted(present - set(listed) - {formats.SHA_FILE}):
        v.problems.append(f"not listed: {rel}")
    return v


def _verify_zip_file(out: Output) -> Verdict:
    """A one-file export: a local ZIP is read in place; one on HDFS is copied to a local temporary
    file first (a ZIP is read from its end)."""
    import shutil
    import tempfile

    with tempfile.TemporaryFile() if out.is_hdfs else open(out.path(), "rb") as f:
        if out.is_hdfs:
            with out.open_read("") as remote:
                shutil.copyfileobj(remote, f, 1 << 20)
            f.seek(0)
        if not zipfile.is_zipfile(f):
            raise UsageError(f"{out.root}: neither an export folder nor a ZIP export")
        f.seek(0)
        return _verify_zip(f, out.root)


def _verify_zip(source, name: str) -> Verdict:
    """``source``: a path or a seekable file holding the ZIP; ``name``: what messages call it."""
    v = Verdict()
    with zipfile.ZipFile(source) as z:
        names = set(z.namelist())
        if formats.SHA_FILE not in names:
            raise UsageError(f"{name}: the ZIP has no {formats.SHA_FILE}")
        listed = formats.parse_sha_manifest(z.read(formats.SHA_FILE).decode())
        for rel, digest in sorted(listed.items()):
            v.checked += 1
            if rel not in names:
                v.problems.append(f"missing: {rel}")
                continue
            h = hashlib.sha256()
            try:
                with z.open(rel) as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            except zipfile.BadZipFile as exc:  # the ZIP's own CRC caught it first
                v.problems.append(f"changed: {rel} ({exc})")
                continue
            if h.hexdigest() != digest:
                v.problems.append(f"changed: {rel}")
        for rel in sorted(names - set(listed) - {formats.SHA_FILE}):
            v.problems.append(f"not listed: {rel}")
    return v
