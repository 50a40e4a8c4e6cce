"""The export formats' bytes, made the same way every time (no pyspark here).

Reproducible by construction: rows in a stated order, fixed timestamps (tar: 0; zip: 1980-01-01),
owners and modes, JSON with sorted keys, Parquet written by one pinned pyarrow. The same rows give
the same bytes, whichever executor writes them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from typing import Any

FORMATS = ("folders", "zip", "webdataset", "parquet", "csv", "jsonl")
EXTENSIONS = {"png": "png", "jpeg": "jpg", "jpg": "jpg", "webp": "webp", "bmp": "bmp", "tiff": "tif"}
MANIFEST_COLUMNS = ("path", "image_id", "label", "label_index", "split", "width", "height", "source_uri")
# An export --with-augmented adds the lineage of each copy (empty for the curated originals):
# the image it was made from, and the recipe, seed and copy index that made it.
LINEAGE_COLUMNS = ("source_id", "recipe", "seed", "copy")
SHA_FILE = "MANIFEST.sha256"
RELEASE_FILE = "release.json"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
UNLABELLED_DIR = "_unlabelled"


def ext(encoding: str) -> str:
    return EXTENSIONS.get((encoding or "").lower(), (encoding or "bin").lower())


def label_dir(label: str | None) -> str:
    """The folder of a label in the tree (a label never adds a level: '/' becomes '_')."""
    if label is None or label == "":
        return UNLABELLED_DIR
    return label.replace("/", "_").replace("\\", "_").replace("\0", "_")


def tree_path(split: str, label: str | None, image_id: str, encoding: str) -> str:
    """``<split>/<label>/<image_id>.<ext>``: the layout of the design brief."""
    return f"{split}/{label_dir(label)}/{image_id}.{ext(encoding)}"


def shard_name(split: str, shard: int, suffix: str) -> str:
    return f"{split}-{shard:06d}.{suffix}"


def manifest_columns(lineage: bool) -> tuple[str, ...]:
    return MANIFEST_COLUMNS + (LINEAGE_COLUMNS if lineage else ())


def is_copy(row: Mapping[str, Any]) -> bool:
    """An augmented copy (its row names its source image)."""
    return row.get("source_id") is not None


def sample_json(row: Mapping[str, Any]) -> bytes:
    """The ``<key>.json`` of a webdataset sample (an augmented copy's also has its lineage)."""
    keys = ("image_id", "label", "label_index", "split", "width", "height", "source_uri")
    meta = {k: row[k] for k in keys + (LINEAGE_COLUMNS if is_copy(row) else ())}
    return (json.dumps(meta, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def tar_shard(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A webdataset shard: per sample ``<image_id>.<ext>`` then ``<image_id>.json``, rows in the
    given order (the caller sorts them by image_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for r in rows:
            _tar_add(tar, f"{r['image_id']}.{ext(r['encoding'])}", bytes(r["image"]))
            _tar_add(tar, f"{r['image_id']}.json", sample_json(r))
    return buf.getvalue()


def parquet_shard(rows: list[Mapping[str, Any]], lineage: bool = False) -> bytes:
    """A Parquet file of image bytes and metadata (uncompressed: the images are compressed);
    ``lineage`` adds the augmented copies' LINEAGE_COLUMNS (null for originals)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [("image_id", pa.string()), ("label", pa.string()), ("label_index", pa.int32()),
              ("split", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
              ("source_uri", pa.string()), ("encoding", pa.string()), ("image", pa.binary())]
    if lineage:
        fields += [("source_id", pa.string()), ("recipe", pa.string()), ("seed", pa.int64()), ("copy", pa.int32())]
    schema = pa.schema(fields)
    table = pa.table({c: [r[c] if c != "image" else bytes(r[c]) for r in rows] for c in schema.names},
                     schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none", row_group_size=1024)
    return buf.getvalue()


def manifest_header(fmt: str, columns: tuple[str, ...] = MANIFEST_COLUMNS) -> bytes:
    if fmt == "jsonl":
        return b""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(columns)
    return out.getvalue().encode()


def manifest_line(row: Mapping[str, Any], fmt: str, columns: tuple[str, ...] = MANIFEST_COLUMNS) -> bytes:
    """One manifest row as CSV or JSON lines."""
    if fmt == "jsonl":
        return (json.dumps({c: row[c] for c in columns}, sort_keys=True, separators=(",", ":")) + "\n").encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["" if row[c] is None else row[c] for c in columns])
    return out.getvalue().encode()


def sha_manifest(hashes: Mapping[str, str]) -> bytes:
    """``MANIFEST.sha256``: ``<hex>  <path>`` per file, sorted by path (``sha256sum -c`` reads it)."""
    return "".join(f"{hashes[p]}  {p}\n" for p in sorted(hashes)).encode()


def parse_sha_manifest(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, _, path = line.partition("  ")
            out[path.removeprefix("*")] = digest
    return out


def release_json(info: Mapping[str, Any]) -> bytes:
    return (json.dumps(info, sort_keys=True, indent=2) + "\n").encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Sink:
    """A write-only stream (no tell/seek, so zipfile writes the same bytes to a local file and to
    an HDFS stream) that counts and hashes what passes."""

    def __init__(self, raw):
        self.raw, self.hash, self.bytes = raw, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.raw.write(data)
        self.hash.update(data)
        self.bytes += len(data)
        return len(data)

    def flush(self) -> None:
        if hasattr(self.raw, "flush"):
            self.raw.flush()


class ZipStream:
    """A ZIP written entry by entry onto a stream, with fixed times and modes (stored: images are
    already compressed); remembers each entry's SHA-256 for ``MANIFEST.sha256``."""

    def __init__(self, raw):
        self.sink = _Sink(raw)
        self.zip = zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.hashes: dict[str, str] = {}

    def add(self, name: str, data: bytes, compress: bool = False) -> None:
        info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        info.external_attr = 0o644 << 16
        info.create_system = 3
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        self.zip.writestr(info, data)
        self.hashes[name] = sha256(data)

    def close(self) -> None:
        self.zip.close()
