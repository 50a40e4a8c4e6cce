"""The Spark-free parts of erasure: the manifest reader, URI spellings, the Parquet scanner."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ptdm_spark.errors import UsageError
from ptdm_spark.protect import erase

ID = hashlib.sha256(b"the image").hexdigest()
OTHER = hashlib.sha256(b"another").hexdigest()


def test_manifest_formats(tmp_path: Path):
    txt = tmp_path / "takedown.txt"
    txt.write_text(f"# ids and URIs\n{ID.upper()}\n/data/a.png  # a file\n\nhttps://x.org/b.jpg\n")
    assert erase.read_manifest(str(txt)) == ([ID], ["/data/a.png", "https://x.org/b.jpg"])
    c = tmp_path / "t.csv"
    c.write_text(f"image_id,source_uri,note\n{ID},,x\n,file:/d/c.png,y\n")
    assert erase.read_manifest(str(c)) == ([ID], ["file:/d/c.png"])
    j = tmp_path / "t.jsonl"
    j.write_text(f'{{"image_id": "{OTHER}"}}\n{{"source_uri": "hdfs://nn/x.png"}}\n')
    assert erase.read_manifest(str(j)) == ([OTHER], ["hdfs://nn/x.png"])


@pytest.mark.parametrize("content,msg", [("path,label\na,b\n", "needs a column"), ("image_id\n\n", "names no image")])
def test_manifest_errors(tmp_path: Path, content: str, msg: str):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(UsageError, match=msg):
        erase.read_manifest(str(f))
    with pytest.raises(UsageError, match="no such file"):
        erase.read_manifest(str(tmp_path / "missing.txt"))


def test_ids_and_uri_forms():
    assert erase.check_ids([ID.upper()]) == [ID]
    with pytest.raises(UsageError, match="64 hex digits"):
        erase.check_ids(["abc"])
    assert erase.uri_forms("/d/a.png") == {"/d/a.png", "file:/d/a.png", "file:///d/a.png"}
    assert erase.uri_forms("file:///d/a.png") == {"file:///d/a.png", "file:/d/a.png"}
    assert erase.uri_forms("hdfs://nn:9000/a.png") == {"hdfs://nn:9000/a.png"}


def test_scanner_finds_ids_and_bytes_anywhere(tmp_path: Path):
    """Top-level, nested (struct, list, map) strings equal to the id; binary values whose SHA-256
    is a needle; a near miss (the id as a substring, other bytes) is not a hit."""
    n = erase.Needles(ID, {ID}, {ID, hashlib.sha256(b"normalized").hexdigest()})
    t = pa.table({
        "image_id": pa.array(["x", ID]),
        "args": pa.array([f"--image-id {ID}", None]),  # a command line naming it: not the image
        "prov": pa.array([{"url": ID}, {"url": None}], pa.struct([("url", pa.string())])),
        "ids": pa.array([[OTHER], [OTHER, ID]], pa.list_(pa.string())),
        "m": pa.array([[("k", 1)], []], pa.map_(pa.string(), pa.int64())),
        "content": pa.array([b"the image", b"x"], pa.binary()),
        "image": pa.array([b"y", b"normalized"], pa.binary()),
        "thumb": pa.array([b"the image plus", None], pa.binary()),
    })
    pq.write_table(t, tmp_path / "a.parquet", row_group_size=1)
    hits = erase.scan_table_file(str(tmp_path / "a.parquet"), n)
    assert sorted(hits) == sorted(["image_id holds the image id", "prov.url holds the image id",
                                   "ids[] holds the image id", "content holds the image's bytes",
                                   "image holds the image's bytes"])
    clean = t.select(["args", "m", "thumb"])
    pq.write_table(clean, tmp_path / "b.parquet")
    assert erase.scan_table_file(str(tmp_path / "b.parquet"), n) == []
