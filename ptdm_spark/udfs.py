"""Thin ``mapInPandas`` adapters over the pure per-object code in ``imaging/`` and ``io/``.

Each adapter returns a function of an iterator of pandas DataFrames, so per-worker set-up (one
OpenCV thread, the params) happens once per task, not once per batch or row. Output is yielded
in bounded chunks so that a batch of large images never becomes one huge Arrow batch.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ptdm_spark.imaging import reasons
from ptdm_spark.imaging.pipeline import FIELDS, Params, process_image
from ptdm_spark.io import archives, arrays

OBJECT_COLUMNS = archives.OBJECT_COLUMNS

MapFn = Callable[[Iterable[pd.DataFrame]], Iterator[pd.DataFrame]]


def _chunks(records: Iterable[dict[str, Any]], columns: tuple[str, ...], max_rows: int, max_bytes: int):
    buf: list[dict[str, Any]] = []
    size = 0
    for rec in records:
        buf.append(rec)
        size += len(rec.get("content") or b"") + len(rec.get("image") or b"")
        if len(buf) >= max_rows or size >= max_bytes:
            yield pd.DataFrame(buf, columns=list(columns))
            buf, size = [], 0
    if buf:
        yield pd.DataFrame(buf, columns=list(columns))


def _ts(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else pd.Timestamp(value)


def expand_archives(extensions: tuple[str, ...], max_bytes: int, dirname_labels: bool,
                    max_rows: int = 1024, max_out_bytes: int = 32 << 20) -> MapFn:
    """Archive rows (path, content, label) -> one object row per member."""

    def fn(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        def records():
            for batch in batches:
                for row in batch.itertuples(index=False):
                    yield from archives.iter_archive(
                        row.path, bytes(row.content), extensions=extensions, max_bytes=max_bytes,
                        dirname_labels=dirname_labels, archive_label=row.label,
                    )
        yield from _chunks(records(), OBJECT_COLUMNS, max_rows, max_out_bytes)

    return fn


def read_local_files(max_out_bytes: int = 64 << 20) -> MapFn:
    """Rows with a ``path`` (file:/...) -> the same rows plus ``content``: the file's bytes, or
    None when it cannot be read (permission, vanished: the job finds it as ``unreadable``).
    Output frames hold about ``max_out_bytes`` of content each."""
    from ptdm_spark.io import listing

    def read(uri: str) -> bytes | None:
        try:
            return listing.read_local(uri)
        except OSError:
            return None

    def fn(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            start, size, contents = 0, 0, []
            for i, uri in enumerate(batch["path"].tolist()):
                data = read(uri)
                contents.append(data)
                size += len(data or b"")
                if size >= max_out_bytes:
                    yield batch.iloc[start : i + 1].assign(content=contents)
                    start, size, contents = i + 1, 0, []
            if contents:
                yield batch.iloc[start:].assign(content=contents)

    return fn


def expand_arrays(labels_by_path: Mapping[str, bytes | None], label_names: tuple[str, ...],
                  use_labels: bool, max_rows: int = 4096, max_out_bytes: int = 32 << 20) -> MapFn:
    """IDX image files and CIFAR batches (path, content, kind, modificationTime) -> one PNG
    object per image, ``source_uri`` = ``<file uri>#<index>`` (CIFAR: ``#<index>/<filename>``)."""

    def one_file(row) -> Iterator[dict[str, Any]]:
        base = {"source_format": row.kind, "source_modified_at": _ts(row.modificationTime),
                "error_reason": None, "error_detail": None}
        try:
            if row.kind == "idx":
                images = arrays.parse_idx(bytes(row.content))
                lab_bytes = labels_by_path.get(row.path)
                labels = arrays.parse_idx(lab_bytes) if lab_bytes is not None else None
                names = [str(i) for i in range(len(images))]
                if labels is not None and len(labels) != len(images):
                    raise arrays.ArrayFormatError(f"{len(labels)} labels for {len(images)} images")
            else:
                batch = arrays.cifar_batch(bytes(row.content))
                images, labels = batch.images, batch.labels
                names = [f"{i}/{n}" for i, n in enumerate(batch.names)]
        except arrays.ArrayFormatError as exc:
            reason = reasons.TRUNCATED if "truncated" in str(exc) else reasons.CORRUPT
            yield {**base, "source_uri": row.path, "content": None, "size_bytes": len(row.content),
                   "label": None, "rel_path": posixpath.basename(row.path),
                   "error_reason": reason, "error_detail": str(exc)}
            return
        fname = posixpath.basename(row.path)
        for i, img in enumerate(images):
            label = None
            if use_labels and labels is not None:
                k = int(labels[i])
                label = label_names[k] if k < len(label_names) else str(k)
            png = arrays.encode_png(np.asarray(img, dtype=np.uint8))
            yield {**base, "source_uri": f"{row.path}#{names[i]}", "content": png, "size_bytes": len(png),
                   "label": label, "rel_path": f"{fname}#{names[i]}"}

    def fn(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from ptdm_spark.imaging.cv import configure_worker

        configure_worker()

        def records():
            for batch in batches:
                for row in batch.itertuples(index=False):
                    yield from one_file(row)
        yield from _chunks(records(), OBJECT_COLUMNS, max_rows, max_out_bytes)

    return fn


def process_images(params: Params, passthrough: tuple[str, ...], max_rows: int = 512,
                   max_out_bytes: int = 32 << 20) -> MapFn:
    """(image_id, content, *passthrough) -> image_id, the record of ``process_image``, *passthrough."""
    columns = ("image_id", *FIELDS, *passthrough)

    def fn(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from ptdm_spark.hooks import pause_point
        from ptdm_spark.imaging.cv import configure_worker

        configure_worker()
        pause_point("process.task")

        def records():
            for batch in batches:
                cols = {c: batch[c].tolist() for c in ("image_id", "content", *passthrough)}
                for i, data in enumerate(cols["content"]):
                    rec = process_image(data, params)
                    rec["image_id"] = cols["image_id"][i]
                    for c in passthrough:
                        rec[c] = cols[c][i]
                    yield rec
        yield from _chunks(records(), columns, max_rows, max_out_bytes)

    return fn


def bucket_pairs(max_distance: int, cross: bool = False) -> MapFn:
    """Rows (band, key, phash, is_new), sorted by (band, key) within the partition -> verified
    near pairs (a, b, distance) from every bucket that holds a new hash. ``cross``: rows also
    have ``small``, and only small/other pairs count (``hashing.bucket_cross_pairs``).

    A bucket may straddle two Arrow batches: the last bucket of a batch is held back and joined
    to the next one, so memory stays one batch plus one bucket.
    """
    from ptdm_spark.imaging import hashing

    def pairs(df: pd.DataFrame) -> Iterator[pd.DataFrame]:
        band, key = df["band"].to_numpy(), df["key"].to_numpy()
        h, new = df["phash"].to_numpy(np.int64), df["is_new"].to_numpy(bool)
        starts = np.concatenate([[0], np.flatnonzero((band[1:] != band[:-1]) | (key[1:] != key[:-1])) + 1])
        ends = np.append(starts[1:], len(df))
        searched = (np.add.reduceat(new.astype(np.int64), starts) > 0) & (ends - starts > 1)
        if cross:
            small = df["small"].to_numpy(bool)

            def bucket(s, e):
                return hashing.bucket_cross_pairs(h[s:e], new[s:e], small[s:e], max_distance)
        else:
            def bucket(s, e):
                return hashing.bucket_pairs(h[s:e], new[s:e], max_distance)
        found = [chunk for s, e in zip(starts[searched], ends[searched]) for chunk in bucket(s, e)]
        if found:  # one output frame per input batch: a frame per bucket costs more than the search
            a, b, d = (np.concatenate(x) for x in zip(*found))
            yield pd.DataFrame({"a": a, "b": b, "distance": d})

    def fn(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        carry: pd.DataFrame | None = None
        for batch in batches:
            if carry is not None and len(carry):
                batch = pd.concat([carry, batch], ignore_index=True)
            if batch.empty:
                continue
            band, key = batch["band"].to_numpy(), batch["key"].to_numpy()
            last = (band == band[-1]) & (key == key[-1])
            cut = int(np.argmax(last))  # the sorted batch's last bucket starts here
            carry = batch.iloc[cut:]
            if cut:
                yield from pairs(batch.iloc[:cut].reset_index(drop=True))
        if carry is not None and len(carry):
            yield from pairs(carry.reset_index(drop=True))

    return fn
