"""A training loader without Spark: a release's curated images for PyTorch-style data loaders.

``CuratedDataset`` reads the ``releases`` and ``curated`` Delta tables with the ``deltalake``
package and pyarrow only (no JVM, no pyspark). At construction it reads the metadata columns of
the release's curated files (never the images) into an index; images are read on demand, one
Parquet row group at a time, through files each process opens itself (Petastorm's rule: open
lazily, per worker), so the dataset pickles small and is safe with multi-process data loaders
(``DataLoader(num_workers=N)``, ``multiprocessing`` with spawn or fork).

    ds = CuratedDataset("/data/lakehouse", "fashion", release="v1", split="train")
    image, label = ds[0]          # RGB uint8 (H, W, 3), label index (ds.classes[label])
    for batch in ds.iter_batches(256): ...
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ptdm_spark.sharing.classes import class_indices, label_index

META_COLUMNS = ("image_id", "label", "split", "width", "height")


def _table_uri(root: str, dataset: str, table: str) -> str:
    if "://" in root and not root.startswith("file:"):
        return f"{root.rstrip('/')}/{dataset}/{table}"
    return str(Path(root.removeprefix("file://").removeprefix("file:")).expanduser().resolve() / dataset / table)


def find_release(root: str, dataset: str, name: str, storage_options: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``releases`` row called ``name`` (as a dict), read with deltalake."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(_table_uri(root, dataset, "releases"), storage_options=storage_options)
    except TableNotFoundError:
        raise LookupError(f"dataset {dataset!r} under {root} has no releases") from None
    rows = [r for r in table.to_pyarrow_table().to_pylist() if r["name"] == name]
    if not rows:
        raise LookupError(f"no release {name!r} of dataset {dataset!r} under {root}")
    row = rows[0]
    row["table_versions"] = dict(row["table_versions"])
    return row


class CuratedDataset:
    """Map-style dataset over a release's (or a curated version's) rows of one split.

    Args:
        root: the lakehouse root (local path, ``file:`` or ``hdfs://`` URI).
        dataset: the dataset name.
        release: a release name (its curated version and class indices), or
        version: a Delta version of ``curated`` (classes: its sorted labels).
        split: the split to read (None: every split).
        decode: True: items are RGB uint8 arrays (H, W, 3); False: the encoded bytes.
        storage_options: passed to deltalake (e.g. for HDFS or object stores).

    Items are ordered by the Delta log's file order, then row order within each file, so that
    neighbours share a row group; ``image_ids`` lists them.
    """

    def __init__(self, root: str, dataset: str, release: str | None = None, version: int | None = None,
                 split: str | None = "train", decode: bool = True, storage_options: dict[str, str] | None = None):
        from deltalake import DeltaTable

        if (release is None) == (version is None):
            raise ValueError("give exactly one of release=NAME or version=N")
        self.root, self.dataset, self.split, self.decode = str(root), dataset, split, decode
        self.storage_options = storage_options
        self.release = release
        classes = None
        if release is not None:
            row = find_release(self.root, dataset, release, storage_options)
            version = int(row["table_versions"]["curated"])
            classes = {c["label"]: int(c["index"]) for c in row["classes"]}
        self.version = int(version)
        table = DeltaTable(_table_uri(self.root, dataset, "curated"), version=self.version,
                           storage_options=storage_options)
        features = set(table.protocol().reader_features or [])
        if "deletionVectors" in features:
            raise NotImplementedError("curated uses deletion vectors: the loader reads whole Parquet files")
        dataset_ = table.to_pyarrow_dataset()
        self._files = list(dataset_.files)
        self._fs = dataset_.filesystem
        self._build_index(classes)
        self._open: dict[int, Any] = {}
        self._groups: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._pid = os.getpid()

    def _build_index(self, classes: dict[str, int] | None) -> None:
        import pyarrow.parquet as pq

        ids, labels, where = [], [], []
        all_labels: set[str | None] = set()
        for fi, path in enumerate(self._files):
            pf = pq.ParquetFile(self._fs.open_input_file(path))
            for g in range(pf.metadata.num_row_groups):
                t = pf.read_row_group(g, columns=["image_id", "label", "split"]).to_pydict()
                for row, (iid, lb, sp) in enumerate(zip(t["image_id"], t["label"], t["split"])):
                    all_labels.add(lb)
                    if self.split is None or sp == self.split:
                        ids.append(iid)
                        labels.append(lb)
                        where.append((fi, g, row))
        self.classes_to_idx = classes if classes is not None else class_indices(all_labels)
        self.classes = [lb for lb, _ in sorted(self.classes_to_idx.items(), key=lambda x: x[1])]
        self.image_ids, self.labels = ids, labels
        self.targets = [label_index(self.classes_to_idx, lb) for lb in labels]
        self._where = where

    # Files are opened per process: after fork or unpickling, the handles are rebuilt.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"], state["_groups"] = {}, OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def _row_group(self, fi: int, g: int):
        import pyarrow.parquet as pq

        if self._pid != os.getpid():  # forked: never share a parent's open files
            self._open, self._groups, self._pid = {}, OrderedDict(), os.getpid()
        key = (fi, g)
        if key in self._groups:
            self._groups.move_to_end(key)
            return self._groups[key]
        if fi not in self._open:
            self._open[fi] = pq.ParquetFile(self._fs.open_input_file(self._files[fi]))
        col = self._open[fi].read_row_group(g, columns=["image"]).column("image")
        self._groups[key] = col
        while len(self._groups) > 2:
            self._groups.popitem(last=False)
        return col

    def __len__(self) -> int:
        return len(self._where)

    def raw(self, i: int) -> bytes:
        """The encoded bytes of item ``i``."""
        fi, g, row = self._where[i]
        return self._row_group(fi, g)[row].as_py()

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        data = self.raw(i)
        return (decode_rgb(data) if self.decode else data), self.targets[i]

    def iter_batches(self, batch_size: int) -> Iterator[dict[str, Any]]:
        """Stream the items in order, ``batch_size`` at a time: dicts of ``image_id``, ``image``
        (a list of arrays, or of bytes without decode) and ``label`` (int64 array)."""
        for start in range(0, len(self), batch_size):
            idx = range(start, min(start + batch_size, len(self)))
            images = [self.raw(i) for i in idx]
            yield {"image_id": [self.image_ids[i] for i in idx],
                   "image": [decode_rgb(b) for b in images] if self.decode else images,
                   "label": np.asarray([self.targets[i] for i in idx], np.int64)}


def decode_rgb(data: bytes) -> np.ndarray:
    """Encoded image bytes -> RGB uint8 (H, W, 3)."""
    from ptdm_spark.imaging.cv import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ValueError("undecodable image bytes")
    return np.ascontiguousarray(arr[:, :, ::-1])
