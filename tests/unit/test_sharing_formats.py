"""The export formats' bytes without Spark: fixed metadata, read back by the standard readers."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile

import pytest

from ptdm_spark.sharing import formats
from ptdm_spark.sharing.classes import class_indices
from ptdm_spark.sharing.outputs import Output
from ptdm_spark.sharing.verify import verify

pytestmark = pytest.mark.unit

ROWS = [{"image_id": f"{i:064x}", "label": lb, "label_index": 0, "split": "train", "width": 2, "height": 2,
         "source_uri": f"file:/x/{i}.png", "encoding": "png", "image": bytes([i]) * (10 + i)}
        for i, lb in enumerate(["a", "b", None])]


def test_class_indices_rule():
    assert class_indices(["b", "a", None, "b"]) == {"a": 0, "b": 1}
    assert class_indices(["b", "a"], table=[("b", 0), ("a", 7)]) == {"b": 0, "a": 7}


def test_tar_shard_is_fixed_and_readable():
    data = formats.tar_shard(ROWS)
    assert data == formats.tar_shard([dict(r) for r in ROWS])
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = t.getmembers()
        assert [m.name for m in members][:2] == [f"{0:064x}.png", f"{0:064x}.json"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
        assert json.loads(t.extractfile(members[1]).read())["label"] == "a"
        assert t.extractfile(members[0]).read() == ROWS[0]["image"]


def test_lineage_of_copies_in_json_manifest_and_parquet():
    import csv

    import pyarrow.parquet as pq

    original = {**ROWS[0], "source_id": None, "recipe": None, "seed": None, "copy": None}
    copy = {**ROWS[1], "source_id": ROWS[0]["image_id"], "recipe": "basic", "seed": 7, "copy": 1}
    assert "source_id" not in json.loads(formats.sample_json(original))
    meta = json.loads(formats.sample_json(copy))
    assert (meta["source_id"], meta["recipe"], meta["seed"], meta["copy"]) == (ROWS[0]["image_id"], "basic", 7, 1)
    cols = formats.manifest_columns(True)
    lines = formats.manifest_header("csv", cols) + b"".join(
        formats.manifest_line({**r, "path": "p"}, "csv", cols) for r in (original, copy))
    got = list(csv.DictReader(io.StringIO(lines.decode())))
    assert [(g["source_id"], g["copy"]) for g in got] == [("", ""), (ROWS[0]["image_id"], "1")]
    assert formats.manifest_header("csv") == formats.manifest_header("csv", formats.manifest_columns(False))
    t = pq.read_table(io.BytesIO(formats.parquet_shard([original, copy], lineage=True))).to_pylist()
    assert [(x["source_id"], x["seed"], x["copy"]) for x in t] == [(None, None, None), (ROWS[0]["image_id"], 7, 1)]
    assert "source_id" not in pq.read_table(io.BytesIO(formats.parquet_shard([ROWS[0]]))).column_names


def test_tree_paths():
    assert formats.tree_path("val", None, "ab", "jpeg") == "val/_unlabelled/ab.jpg"
    assert formats.tree_path("train", "a/b", "ab", "png") == "train/a_b/ab.png"


def test_zip_stream_fixed_and_verified(tmp_path):
    def build(path):
        with open(path, "wb") as f:
            z = formats.ZipStream(f)
            for r in ROWS:
                z.add(formats.tree_path(r["split"], r["label"], r["image_id"], r["encoding"]), r["image"])
            z.add(formats.SHA_FILE, formats.sha_manifest(dict(z.hashes)))
            z.close()
        return path.read_bytes()

    one, two = build(tmp_path / "a.zip"), build(tmp_path / "b.zip")
    assert one == two
    with zipfile.ZipFile(tmp_path / "a.zip") as z:
        assert z.testzip() is None and all(i.date_time == formats.ZIP_TIME for i in z.infolist())
    assert verify(Output(str(tmp_path / "a.zip"))).problems == []


def test_verify_folder(tmp_path):
    out = Output(str(tmp_path))
    out.write("x/a.bin", b"hello")
    out.write(formats.SHA_FILE, formats.sha_manifest({"x/a.bin": hashlib.sha256(b"hello").hexdigest()}))
    assert verify(out).problems == [] and not (tmp_path / "x" / "a.bin.part").exists()
    (tmp_path / "x" / "a.bin").write_bytes(b"hellp")
    (tmp_path / "stray").write_bytes(b"")
    assert verify(out).problems == ["changed: x/a.bin", "not listed: stray"]
