"""Backup from a local lakehouse into a real HDFS, and restore from it."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.cluster.conftest import WEBHDFS
from tests.imagefiles import encode, photo
from tests.spark.test_backup import _listing, _rows

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.spark]


def test_backup_to_hdfs_and_restore_from_it(hdfs, spark, cfg, tmp_path, ptdm):
    from hdfs import InsecureClient

    src = tmp_path / "src"
    for s in range(6):
        p = src / ("a" if s % 2 else "b") / f"{s}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(encode(photo(300 + s, 40, 40)))
    status, out = ptdm("ingest", str(src), "--dataset", "bk_hdfs")
    assert status == 0, out
    ds_root = Path(cfg.lakehouse.root) / "bk_hdfs"
    listing = _listing(ds_root)
    folder = f"/backups/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("backup", "--dataset", "bk_hdfs", "--to", f"{hdfs}{folder}")
    assert status == 0, out

    # What HDFS holds, read over WebHDFS: one object per distinct file, named by its SHA-256.
    client = InsecureClient(WEBHDFS)
    objects = {}
    for d, _, names in client.walk(f"{folder}/objects"):
        for n in names:
            with client.read(f"{d}/{n}") as f:
                objects[n] = hashlib.sha256(f.read()).hexdigest()
    assert objects and all(n == sha for n, sha in objects.items())
    assert set(objects) == set(listing.values())
    (manifest,) = client.list(f"{folder}/manifests/bk_hdfs")
    with client.read(f"{folder}/manifests/bk_hdfs/{manifest}") as f:
        m = json.loads(f.read())
    assert {f"{t}/{e['path']}" for t, spec in m["tables"].items() for e in spec["files"]} == set(listing)

    # A second backup keeps the first manifest; a restore of the first from HDFS gives the same rows.
    status, out = ptdm("backup", "--dataset", "bk_hdfs", "--to", f"{hdfs}{folder}")
    assert status == 0, out
    assert len(client.list(f"{folder}/manifests/bk_hdfs")) == 2
    status, out = ptdm("restore", "--dataset", "bk_hdfs", "--from", f"{hdfs}{folder}", "--as", "bk_hdfs_back",
                       "--backup", manifest[:-5])
    assert status == 0, out
    for t in ("raw_images", "rejects"):
        if (ds_root / t).exists():
            a = spark.read.format("delta").load(cfg.lakehouse.table_path("bk_hdfs", t))
            b = spark.read.format("delta").load(cfg.lakehouse.table_path("bk_hdfs_back", t))
            assert _rows(a) == _rows(b), t
    assert spark.table("bk_hdfs_back.raw_images").count() == 6

    # The dataset folder deleted, its tables still registered: restore (the newest backup) needs
    # no --overwrite, and the catalog serves the same rows again.
    before = _rows(spark.table("bk_hdfs.raw_images"))
    shutil.rmtree(ds_root)
    status, out = ptdm("restore", "--dataset", "bk_hdfs", "--from", f"{hdfs}{folder}")
    assert status == 0, out
    spark.catalog.refreshTable("bk_hdfs.raw_images")
    assert _rows(spark.table("bk_hdfs.raw_images")) == before
