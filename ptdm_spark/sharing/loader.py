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

``with_augmented=True`` adds the release's augmented copies (``ptdm augment``) after the curated
images, by the rule of ``ptdm export --with-augmented`` (``releases.augmented``): copies of the
release's curated images of the split, labelled as their source is in the release, each image_id
once.
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


def find_release(root: str, dataset: str, name: str, storage_options: dict[str, str] | None = None,
                 keys: dict[str, bytes] | None = None) -> dict[str, Any]:
    """The ``releases`` row called ``name`` (as a dict), read with deltalake (and pyarrow, which
    decrypts with ``keys`` when the lakehouse is encrypted at rest)."""
    from deltalake.exceptions import TableNotFoundError

    from ptdm_spark.protect.encryption import read_delta

    try:
        table = read_delta(_table_uri(root, dataset, "releases"), keys, storage_options=storage_options)
    except TableNotFoundError:
        raise LookupError(f"dataset {dataset!r} under {root} has no releases") from None
    rows = [r for r in table.to_pylist() if r["name"] == name]
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
        with_augmented: add the release's augmented copies (needs ``release``); ``source_ids``
            names each item's source image (None for curated images).
        key_file: the key file of a lakehouse encrypted at rest (``security.encryption.key_file``):
            the files are decrypted with its master keys (pyarrow; the keys stay in this process).

    Items are ordered by the Delta log's file order, then row order within each file, so that
    neighbours share a row group; ``image_ids`` lists them.
    """

    def __init__(self, root: str, dataset: str, release: str | None = None, version: int | None = None,
                 split: str | None = "train", decode: bool = True, storage_options: dict[str, str] | None = None,
                 with_augmented: bool = False, key_file: str | None = None):
        if (release is None) == (version is None):
            raise ValueError("give exactly one of release=NAME or version=N")
        if with_augmented and release is None:
            raise ValueError("with_augmented=True needs release=NAME (a release pins the augmented copies' version)")
        self.root, self.dataset, self.split, self.decode = str(root), dataset, split, decode
        self.storage_options = storage_options
        self.release = release
        self.key_file = key_file
        classes, augmented_version = None, None
        if release is not None:
            row = find_release(self.root, dataset, release, storage_options, self._keys())
            version = int(row["table_versions"]["curated"])
            classes = {c["label"]: int(c["index"]) for c in row["classes"]}
            augmented_version = row["table_versions"].get("augmented")
            if with_augmented and augmented_version is None:
                raise LookupError(f"release {release!r} of {dataset!r} has no augmented copies: it was created "
                                  "before any ptdm augment")
        self.version = int(version)
        # each data file with the filesystem its table's paths are relative to
        self._files, fs = self._parquet_files("curated", self.version)
        self._fss, self._file_fs = [fs], [0] * len(self._files)
        every: dict[str, tuple[str | None, str]] | None = {} if with_augmented else None
        self._build_index(classes, every)
        self.source_ids: list[str | None] = [None] * len(self.image_ids)
        if with_augmented:
            self._add_copies(int(augmented_version), every)
        self._open: dict[int, Any] = {}
        self._groups: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._pid = os.getpid()

    def _parquet_files(self, table: str, version: int) -> tuple[list[str], Any]:
        """The data files of ``table`` at ``version`` and the filesystem to open them with."""
        from deltalake import DeltaTable

        dt = DeltaTable(_table_uri(self.root, self.dataset, table), version=version,
                        storage_options=self.storage_options)
        if "deletionVectors" in set(dt.protocol().reader_features or []):
            raise NotImplementedError(f"{table} uses deletion vectors: the loader reads whole Parquet files")
        ds = dt.to_pyarrow_dataset()
        return list(ds.files), ds.filesystem

    def _keys(self) -> dict[str, bytes] | None:
        """The master keys of ``key_file`` (None without one); read again in each process, never pickled."""
        if self.key_file is None:
            return None
        from ptdm_spark.protect.encryption import read_key_file

        return read_key_file(self.key_file)

    def _row_groups(self, files: list[str], fs: Any, columns: list[str]) -> Iterator[tuple[int, int, dict]]:
        from ptdm_spark.protect.encryption import open_parquet

        keys = self._keys()
        for fi, path in enumerate(files):
            pf = open_parquet(fs.open_input_file(path), keys)
            for g in range(pf.metadata.num_row_groups):
                yield fi, g, pf.read_row_group(g, columns=columns).to_pydict()

    def _build_index(self, classes: dict[str, int] | None,
                     every: dict[str, tuple[str | None, str]] | None = None) -> None:
        """The split's items; ``every`` (when given) receives each curated image's (label, split)."""
        ids, labels, where = [], [], []
        all_labels: set[str | None] = set()
        for fi, g, t in self._row_groups(self._files, self._fss[0], ["image_id", "label", "split"]):
            for row, (iid, lb, sp) in enumerate(zip(t["image_id"], t["label"], t["split"])):
                all_labels.add(lb)
                if every is not None:
                    every[iid] = (lb, sp)
                if self.split is None or sp == self.split:
                    ids.append(iid)
                    labels.append(lb)
                    where.append((fi, g, row))
        self.classes_to_idx = classes if classes is not None else class_indices(all_labels)
        self.classes = [lb for lb, _ in sorted(self.classes_to_idx.items(), key=lambda x: x[1])]
        self.image_ids, self.labels = ids, labels
        self.targets = [label_index(self.classes_to_idx, lb) for lb in labels]
        self._where = where

    def _add_copies(self, version: int, curated: dict[str, tuple[str | None, str]]) -> None:
        """Append the augmented copies of the split's curated images (see the module's docstring);
        ``curated``: every curated image's (label, split) in the release."""
        files, fs = self._parquet_files("augmented", version)
        base = len(self._files)
        found: dict[str, tuple[tuple, int, int, int, str]] = {}
        cols = ["image_id", "source_id", "recipe", "seed", "copy"]
        for fi, g, t in self._row_groups(files, fs, cols):
            for row, (iid, src, rcp, seed, cp) in enumerate(zip(*(t[c] for c in cols))):
                if src not in curated or iid in curated:
                    continue
                if self.split is not None and curated[src][1] != self.split:
                    continue
                key = (src, rcp, seed, cp)
                if iid not in found or key < found[iid][0]:
                    found[iid] = (key, base + fi, g, row, src)
        self._files += files
        self._file_fs += [len(self._fss)] * len(files)
        self._fss.append(fs)
        for iid, (_, fi, g, row, src) in sorted(found.items(), key=lambda x: x[1][1:4]):
            lb = curated[src][0]
            self.image_ids.append(iid)
            self.labels.append(lb)
            self.targets.append(label_index(self.classes_to_idx, lb))
            self.source_ids.append(src)
            self._where.append((fi, g, row))

    # Files are opened per process: after fork or unpickling, the handles are rebuilt.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_open"], state["_groups"] = {}, OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def _row_group(self, fi: int, g: int):
        from ptdm_spark.protect.encryption import open_parquet

        if self._pid != os.getpid():  # forked: never share a parent's open files
            self._open, self._groups, self._pid = {}, OrderedDict(), os.getpid()
        key = (fi, g)
        if key in self._groups:
            self._groups.move_to_end(key)
            return self._groups[key]
        if fi not in self._open:
            self._open[fi] = open_parquet(self._fss[self._file_fs[fi]].open_input_file(self._files[fi]), self._keys())
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
