"""Erasure (`ptdm erase`) on one small dataset made here.

The module fixture runs `ptdm run` on 13 generated 40x40 PNGs in two labels: nine plain photos,
an exact duplicate pair (the same bytes under two names: one image) and a near-duplicate pair
(one photo and the same photo 5 % brighter), creates release v1, then erases one plain image by
id and the kept member of the near pair by its file's path. The truths are the files the test
made (ids = SHA-256 of the bytes), the dedupe rule stated in the README (equal resolution: the
smaller id is kept) and pyarrow's own reading of every Parquet file under the dataset folder.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

DS = "erasure"


def _make(src: Path) -> dict[str, dict]:
    """The files; returns {name: {"path", "bytes", "id", "label"}}."""
    files: dict[str, tuple[str, bytes]] = {}
    for s in range(9):
        files[f"p{s}"] = (("ant", "bee")[s % 2], encode(photo(400 + s, 40, 40)))
    twin = encode(photo(450, 40, 40))
    files["twin_a"], files["twin_b"] = ("ant", twin), ("ant", twin)
    near = photo(460, 40, 40)
    files["near"] = ("bee", encode(near))
    files["near_bright"] = ("bee", encode(np.clip(near.astype(np.float32) * 1.05, 0, 255).astype(np.uint8)))
    out = {}
    for name, (label, data) in files.items():
        p = src / label / f"{name}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out[name] = {"path": p, "bytes": data, "id": hashlib.sha256(data).hexdigest(), "label": label}
    return out


def parquet_hits(folder: Path, strings: set[str], digests: set[str], raw: set[bytes]) -> list[str]:
    """Every Parquet file under ``folder`` (but erasures/, which records ids by design), read with
    pyarrow: (file, column) where a string value equals one of ``strings``, or a binary value's
    SHA-256 is in ``digests`` or it contains one of ``raw``."""
    hits = []

    def walk(name, arr, where):
        tp = arr.type
        if pa.types.is_string(tp) or pa.types.is_large_string(tp):
            if set(arr.to_pylist()) & strings:
                hits.append(f"{where}:{name}")
        elif pa.types.is_binary(tp) or pa.types.is_large_binary(tp):
            for v in arr.to_pylist():
                if v is not None and (hashlib.sha256(v).hexdigest() in digests or any(b in v for b in raw)):
                    hits.append(f"{where}:{name}")
                    break
        elif pa.types.is_map(tp):
            walk(name + ".k", arr.keys, where)
            walk(name + ".v", arr.items, where)
        elif pa.types.is_list(tp) or pa.types.is_large_list(tp):
            walk(name + "[]", arr.flatten(), where)
        elif pa.types.is_struct(tp):
            for i in range(tp.num_fields):
                walk(f"{name}.{tp.field(i).name}", arr.field(i), where)

    files = [p for p in folder.rglob("*.parquet") if "erasures" not in p.relative_to(folder).parts]
    assert files
    for f in files:
        t = pq.read_table(f)
        for name in t.column_names:
            for chunk in t.column(name).chunks:
                walk(name, chunk, str(f.relative_to(folder)))
    return hits


@pytest.fixture(scope="module")
def h(tmp_path_factory, spark, cfg, ptdm_module):
    from delta.tables import DeltaTable

    from ptdm_spark import report

    ptdm = ptdm_module

    def version(table: str) -> int:
        return DeltaTable.forPath(spark, cfg.lakehouse.table_path(DS, table)).history(1).first().version

    def table(name: str):
        return spark.read.format("delta").load(cfg.lakehouse.table_path(DS, name))

    tmp = tmp_path_factory.mktemp("erase")
    f = _make(tmp / "src")
    assert ptdm("run", str(tmp / "src"), "--dataset", DS)[0] == 0
    assert ptdm("release", "create", "v1", "--dataset", DS)[0] == 0
    near_ids = sorted([f["near"]["id"], f["near_bright"]["id"]])
    kept, other = near_ids  # equal resolution: the smaller id is kept (README, dedupe rule)
    plain = f["p3"]["id"]
    kept_name = next(n for n in ("near", "near_bright") if f[n]["id"] == kept)
    normalized = {r.image_id: r.image for r in table("images").filter(f"image_id IN ('{plain}', '{kept}')").collect()}
    before = {
        "dups": {(r.image_id, r.kept_id) for r in table("duplicates").collect()},
        "curated": {r.image_id for r in table("curated").select("image_id").collect()},
        "curated_version": version("curated"),
        "images_version": version("images"),
    }
    needles = {"strings": {plain, kept}, "digests": {plain, kept, *(hashlib.sha256(b).hexdigest() for b in normalized.values())},
               "raw": {f["p3"]["bytes"], f[kept_name]["bytes"]}}
    folder = Path(cfg.lakehouse.root) / DS
    before["hits"] = parquet_hits(folder, **needles)
    before["verify"] = ptdm("erase", "--verify", "--dataset", DS, "--image-id", plain)
    erase1 = ptdm("erase", "--dataset", DS, "--image-id", plain, "--reason", "takedown #1")
    erase2 = ptdm("erase", "--dataset", DS, "--source-uri", str(f[kept_name]["path"]), "--reason", "takedown #2")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        acc = report.accounting(spark, cfg, DS)
    return {"f": f, "plain": plain, "kept": kept, "other": other, "before": before, "needles": needles,
            "folder": folder, "erase1": erase1, "erase2": erase2,
            "acc": acc, "acc_out": out.getvalue(), "ptdm": ptdm, "table": table}


def test_fixture_preconditions(h):
    """The dataset is what the test planted: one near pair (kept = the smaller id), the scanner
    finds the images before the erasure."""
    assert (h["other"], h["kept"]) in h["before"]["dups"]
    assert {h["plain"], h["kept"]} <= h["before"]["curated"] and h["other"] not in h["before"]["curated"]
    assert h["before"]["hits"], "the scan must find the images before they are erased"
    assert h["erase1"][0] == 0, h["erase1"][1]
    assert h["erase2"][0] == 0, h["erase2"][1]


def test_no_parquet_file_holds_the_erased_images(h):
    """pyarrow over every Parquet file under the dataset folder (every version, checkpoints, ...):
    neither id, nor the original bytes, nor the normalized bytes anywhere."""
    assert parquet_hits(h["folder"], **h["needles"]) == []


def test_the_other_images_stay_curated(h):
    curated = {r.image_id for r in h["table"]("curated").select("image_id").collect()}
    assert curated == (h["before"]["curated"] - {h["plain"], h["kept"]}) | {h["other"]}
    assert h["f"]["twin_a"]["id"] in curated
    raw = {r.source_uri.rsplit("/", 1)[1] for r in h["table"]("raw_images").select("source_uri").collect()}
    assert raw == {p["path"].name for n, p in h["f"].items() if n not in ("p3",) and p["id"] != h["kept"]}


def test_near_duplicate_member_takes_over(h):
    """The erased image was the kept one of its pair: the other member is now kept and curated."""
    dups = {r.image_id for r in h["table"]("duplicates").collect()}
    kept_ids = {r.kept_id for r in h["table"]("duplicates").collect()}
    assert h["other"] not in dups and h["kept"] not in kept_ids
    row = h["table"]("curated").filter(f"image_id = '{h['other']}'").first()
    assert row is not None and row.label == "bee"


def test_time_travel_to_before_fails_or_has_no_row(h, spark, cfg):
    for table, v in (("curated", h["before"]["curated_version"]), ("images", h["before"]["images_version"])):
        try:
            rows = (spark.read.format("delta").option("versionAsOf", v).load(cfg.lakehouse.table_path(DS, table))
                    .filter(f"image_id IN ('{h['plain']}', '{h['kept']}')").collect())
        except Exception as exc:  # the files of that version are vacuumed
            msg = str(exc)
            assert any(w in msg for w in ("FileNotFound", "FILE_NOT_EXIST", "does not exist", "not found")), msg[:300]
        else:
            assert rows == []


def test_release_marked_amended_and_erasures_rows(h, spark, cfg):
    from pyspark.sql.types import BinaryType

    rel = h["table"]("releases").filter("name = 'v1'").first()
    erasures = h["table"]("erasures").orderBy("erased_at").collect()
    assert [e.reason for e in erasures] == ["takedown #1", "takedown #2"]
    assert [e.image_ids for e in erasures] == [[h["plain"]], [h["kept"]]]
    assert erasures[1].source_uris == [f"file:{h['f'][n]['path']}" for n in ("near", "near_bright")
                                       if h["f"][n]["id"] == h["kept"]]
    assert {e.user for e in erasures} == {getpass.getuser()} and [e.objects for e in erasures] == [1, 1]
    assert not any(isinstance(f.dataType, BinaryType) for f in h["table"]("erasures").schema)  # never content
    assert rel.amended_at is not None and sorted(rel.amended_by) == sorted(e.run_id for e in erasures)
    assert erasures[0].table_versions["curated"] >= 1 and erasures[0].rows_deleted["raw_images"] == 1
    # Every commit of the erase runs is stamped with its run id.
    from delta.tables import DeltaTable

    stamped = [c.userMetadata for c in DeltaTable.forPath(spark, cfg.lakehouse.table_path(DS, "raw_images")).history()
               .collect() if c.operation == "DELETE"]
    assert sorted(json.loads(s)["run_id"] for s in stamped) == sorted(e.run_id for e in erasures)


def test_accounting_adds_up(h):
    acc = h["acc"]
    assert acc["ok"], h["acc_out"]
    assert acc["erased_objects"] == 2 and acc["raw_objects"] == len(h["f"]) - 2
    assert re.search(r"\n\s+erased\s+2\s", h["acc_out"]), h["acc_out"]
    assert re.search(rf"source objects\s+{len(h['f'])}\n", h["acc_out"]), h["acc_out"]


def test_verify(h):
    status, out = h["before"]["verify"]
    assert status == 1 and "FOUND" in out and "raw_images" in out and "curated" in out
    for image_id in (h["plain"], h["kept"]):
        status, out = h["ptdm"]("erase", "--verify", "--dataset", DS, "--image-id", image_id)
        assert status == 0 and "absent" in out, out


def test_usage_errors(h):
    status, out = h["ptdm"]("erase", "--dataset", DS, "--image-id", "0" * 64, "--reason", "x")
    assert status == 2 and "0" * 64 in out and "no such image" in out
    status, out = h["ptdm"]("erase", "--dataset", DS, "--image-id", h["other"])
    assert status == 2 and "--reason" in out
    status, out = h["ptdm"]("erase", "--dataset", DS, "--source-uri", "/nowhere/x.png", "--reason", "x")
    assert status == 2 and "/nowhere/x.png" in out
