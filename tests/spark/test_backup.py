"""Backup and restore on one small dataset made here.

The module fixture makes 12 PNGs (ids = SHA-256 of the file bytes), runs ``ptdm run`` on them
and then on 4 more (every table has at least two versions), takes its own snapshot of every
table with Spark (rows, history, version 0 and the latest of images and curated) and its own
listing of the dataset's files with their SHA-256; then backs up, deletes the dataset folder and
drops its tables, and restores. The tests compare against those snapshots and listings, and
against the backup location's folder as the test lists it, never against the backup's own
bookkeeping alone. Tests run in order: later ones build on the state the earlier leave.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

DS = "bkup"
COPY = "bkup_copy"
LABELS = ("ant", "bee")


def _make(folder: Path, seeds: range) -> set[str]:
    ids = set()
    for s in seeds:
        data = encode(photo(s, 40, 40))
        p = folder / LABELS[s % 2] / f"{s}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        ids.add(hashlib.sha256(data).hexdigest())
    return ids


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _listing(ds_root: Path) -> dict[str, str]:
    """{table/relative path: SHA-256} of every file of the dataset's Delta tables (Hadoop's hidden
    .crc side files left out)."""
    out = {}
    for table in sorted(ds_root.iterdir()):
        if not table.is_dir() or table.name.startswith(("_", ".")) or not (table / "_delta_log").is_dir():
            continue
        for p in table.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                out[str(p.relative_to(ds_root))] = _sha(p)
    return out


def _rows(df) -> list[str]:
    return sorted(json.dumps(r.asDict(recursive=True), sort_keys=True, default=repr) for r in df.collect())


def _tables(ds_root: Path) -> list[str]:
    return sorted({k.split("/", 1)[0] for k in _listing(ds_root)})


def _snapshot(spark, cfg, dataset: str, ds_root: Path) -> dict:
    """Every table's rows and history versions; images and curated at version 0 and now."""
    from delta.tables import DeltaTable

    snap = {"rows": {}, "history": {}, "v0": {}}
    for t in _tables(ds_root):
        path = cfg.lakehouse.table_path(dataset, t)
        if t != "runs":
            snap["rows"][t] = _rows(spark.read.format("delta").load(path))
        snap["history"][t] = sorted(r[0] for r in DeltaTable.forPath(spark, path).history().select("version").collect())
    for t in ("images", "curated"):
        snap["v0"][t] = _rows(spark.read.format("delta").option("versionAsOf", 0).load(cfg.lakehouse.table_path(dataset, t)))
    return snap


def _objects(location: Path) -> dict[str, str]:
    """{object file name: SHA-256 the test computes} of a backup location's objects folder."""
    return {p.name: _sha(p) for p in (location / "objects").rglob("*") if p.is_file() and not p.name.startswith(".")}


def _drop(spark, dataset: str) -> None:
    for t in spark.catalog.listTables(dataset):
        spark.sql(f"DROP TABLE `{dataset}`.`{t.name}`")
    spark.sql(f"DROP DATABASE `{dataset}`")


@pytest.fixture(scope="module")
def h(tmp_path_factory, spark, cfg):
    from ptdm_spark.cli import main
    from tests.conftest import overrides_for

    base = [a for o in overrides_for(Path(cfg.lakehouse.root)) for a in ("--set", o)]

    def ptdm(*args: str) -> int:
        return main([args[0], *base, *args[1:]])

    tmp = tmp_path_factory.mktemp("backup")
    ids = _make(tmp / "src1", range(12))
    assert ptdm("run", str(tmp / "src1"), "--dataset", DS) == 0
    ids |= _make(tmp / "src2", range(100, 104))
    assert ptdm("run", str(tmp / "src2"), "--dataset", DS) == 0
    ds_root = Path(cfg.lakehouse.root) / DS
    before = _snapshot(spark, cfg, DS, ds_root)
    listing1 = _listing(ds_root)
    location = tmp / "backups"
    assert ptdm("backup", "--dataset", DS, "--to", str(location)) == 0
    objects1 = _objects(location)
    manifests = sorted((location / "manifests" / DS).glob("*.json"))
    assert len(manifests) == 1
    manifest1 = json.loads(manifests[0].read_text())

    shutil.rmtree(ds_root)
    _drop(spark, DS)
    assert not ds_root.exists() and not spark.catalog.databaseExists(DS)
    assert ptdm("restore", "--dataset", DS, "--from", str(location)) == 0
    return {"ptdm": ptdm, "tmp": tmp, "ids": ids, "ds_root": ds_root, "before": before, "listing1": listing1,
            "location": location, "objects1": objects1, "manifest1": manifest1}


def test_backup_holds_every_file_of_the_dataset_once_with_its_sha256(h):
    listing, objects, m = h["listing1"], h["objects1"], h["manifest1"]
    # Every object is named by the SHA-256 of its bytes, and there is one per distinct file.
    assert all(name == sha for name, sha in objects.items())
    assert not [p for p in (h["location"] / "objects").rglob(".*")]  # no .crc or temporary files
    assert set(objects) == set(listing.values())
    # The manifest lists exactly the files the test found, with the test's checksums and sizes.
    listed = {f"{t}/{f['path']}": f["sha256"] for t, spec in m["tables"].items() for f in spec["files"]}
    assert listed == listing
    assert m["totals"]["copied_files"] == len(objects)
    for t, spec in m["tables"].items():
        assert spec["version"] == h["before"]["history"][t][-1]


def test_restore_after_deleting_the_dataset_gives_the_same_rows_and_versions(h, spark, cfg):
    after = _snapshot(spark, cfg, DS, h["ds_root"])
    before = h["before"]
    assert after["rows"] == before["rows"]
    assert after["v0"] == before["v0"]
    assert after["v0"]["images"] != after["rows"]["images"]  # version 0 really is the older state
    assert all(len(before["history"][t]) >= 2 for t in ("raw_images", "images", "curated", "splits"))
    for t, versions in before["history"].items():
        if t == "runs":  # the restore's own runs row is a commit more
            assert after["history"][t][: len(versions)] == versions
        else:
            assert after["history"][t] == versions
    # The ids are the SHA-256 of the test's own files, and the catalog serves the tables again.
    got = {r[0] for r in spark.table(f"{DS}.images").select("image_id").collect()}
    assert got == h["ids"]
    assert {r[0] for r in spark.table(f"{DS}.raw_images").select("image_id").collect()} == h["ids"]
    runs = spark.table(f"{DS}.runs").filter("job = 'restore'").collect()
    assert len(runs) == 1 and runs[0].status == "succeeded"


def test_second_backup_copies_only_the_new_files(h, spark, cfg):
    ptdm, location = h["ptdm"], h["location"]
    _make(h["tmp"] / "src3", range(200, 203))
    assert ptdm("run", str(h["tmp"] / "src3"), "--dataset", DS) == 0
    listing2 = _listing(h["ds_root"])
    new = set(listing2.values()) - set(h["listing1"].values())
    assert new  # the third run wrote files
    assert ptdm("backup", "--dataset", DS, "--to", str(location)) == 0
    objects2 = _objects(location)
    assert set(objects2) - set(h["objects1"]) == new
    manifests = sorted((location / "manifests" / DS).glob("*.json"))
    assert len(manifests) == 2
    m2 = json.loads(manifests[-1].read_text())
    assert m2["totals"]["copied_files"] == len(new)
    assert m2["totals"]["files"] == len(listing2)
    h["snapshot2"] = _snapshot(spark, cfg, DS, h["ds_root"])


def _flip(p: Path, at: int) -> None:
    data = bytearray(p.read_bytes())
    data[at] ^= 0x01
    p.write_bytes(bytes(data))


def test_damaged_backup_fails_before_anything_changes(h, spark, cfg, capsys):
    ptdm, ds_root = h["ptdm"], h["ds_root"]
    damaged = h["tmp"] / "damaged"
    shutil.copytree(h["location"], damaged)
    m = json.loads(sorted((damaged / "manifests" / DS).glob("*.json"))[-1].read_text())
    victim = next(f for f in m["tables"]["images"]["files"] if f["path"].endswith(".parquet"))
    obj = damaged / "objects" / victim["sha256"][:2] / victim["sha256"]
    _flip(obj, obj.stat().st_size // 2)
    files_before = _listing(ds_root)
    capsys.readouterr()
    assert ptdm("restore", "--dataset", DS, "--from", str(damaged), "--overwrite") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ptdm restore: error: backup ") and "1 file(s) fail their SHA-256" in err[-1]
    assert f"images/{victim['path']}" in err[-1] and "nothing was changed" in err[-1]
    assert _listing(ds_root) == files_before
    assert not (ds_root / "_restore").exists()
    assert _snapshot(spark, cfg, DS, ds_root)["rows"] == h["snapshot2"]["rows"]
    # A missing file is caught the same way; so is a damaged manifest.
    obj.unlink()
    assert ptdm("restore", "--dataset", DS, "--from", str(damaged), "--overwrite") == 1
    assert "1 missing" in capsys.readouterr().err
    man = sorted((damaged / "manifests" / DS).glob("*.json"))[-1]
    man.write_text(man.read_text().replace('"version": ', '"version": 1', 1))
    assert ptdm("restore", "--dataset", DS, "--from", str(damaged), "--overwrite") == 1
    assert "does not match its digest" in capsys.readouterr().err
    assert _listing(ds_root) == files_before
    # Without --overwrite an existing dataset is refused before anything is read.
    assert ptdm("restore", "--dataset", DS, "--from", str(h["location"])) == 2


def test_restore_as_a_new_dataset(h, spark, cfg):
    assert h["ptdm"]("restore", "--dataset", DS, "--from", str(h["location"]), "--as", COPY) == 0
    copy = _snapshot(spark, cfg, COPY, Path(cfg.lakehouse.root) / COPY)
    assert copy["rows"] == h["snapshot2"]["rows"]
    assert copy["v0"] == h["snapshot2"]["v0"]
    assert {r[0] for r in spark.table(f"{COPY}.curated").select("image_id").collect()} == {
        r[0] for r in spark.table(f"{DS}.curated").select("image_id").collect()}
    # The older backup is still restorable by its id.
    first = h["manifest1"]["backup_id"]
    assert h["ptdm"]("restore", "--dataset", DS, "--from", str(h["location"]), "--as", COPY, "--overwrite",
                     "--backup", first) == 0
    assert _snapshot(spark, cfg, COPY, Path(cfg.lakehouse.root) / COPY)["rows"] == h["before"]["rows"]


def test_restore_one_table_to_a_version(h, spark, cfg):
    from delta.tables import DeltaTable

    path = cfg.lakehouse.table_path(DS, "images")
    v0 = _rows(spark.read.format("delta").option("versionAsOf", 0).load(path))
    assert _rows(spark.read.format("delta").load(path)) != v0
    latest = DeltaTable.forPath(spark, path).history(1).collect()[0].version
    assert h["ptdm"]("restore", "--dataset", DS, "--table", "images", "--version", "0") == 0
    assert _rows(spark.read.format("delta").load(path)) == v0
    last = DeltaTable.forPath(spark, path).history(1).collect()[0]
    assert last.version == latest + 1 and last.operation == "RESTORE"
    assert json.loads(last.userMetadata)["job"] == "restore"
    assert h["ptdm"]("restore", "--dataset", DS, "--table", "images", "--version", "999") == 2
