"""Releases, exports and the Spark-free loader on one small dataset made here.

One module fixture builds the history every test reads: run 1 (24 photos in three labels and
three grey ones), release v1, every export format of v1; run 2 (six new photos, grey images now
excluded), release v2, and v1 exported again. The truths are the arrays and files the test made
(ids = SHA-256 of the file bytes, pixels = the arrays), the curated rows as Spark's Delta reader
sees them at the release's version, and the packages that read each format (tarfile/webdataset,
zipfile, pyarrow, csv)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import multiprocessing
import shutil
import subprocess
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

DS = "share"
SHARD = "export.shard_bytes=20000"  # several shards from a few dozen 40x40 PNGs
LABELS = ("ant", "bee", "cow")
FORMATS = ("folders", "zip", "webdataset", "parquet", "csv", "jsonl")


def _grey(seed: int) -> np.ndarray:
    g = photo(seed, 40, 40).mean(axis=2).astype(np.uint8)
    return np.stack([g, g, g], axis=2)


def _make(folder: Path, seeds: range, grey: range = range(0)) -> dict[str, tuple[str, np.ndarray]]:
    """PNG files under folder/<label>/; returns {image_id: (label, RGB pixels)}."""
    made = {}
    for s in [*seeds, *grey]:
        arr = _grey(s) if s in grey else photo(s, 40, 40)
        label = LABELS[s % 3]
        data = encode(arr)
        p = folder / label / f"{s}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        made[hashlib.sha256(data).hexdigest()] = (label, arr)
    return made


@pytest.fixture(scope="module")
def h(tmp_path_factory, spark, cfg):
    """The history: {'first', 'grey', 'second', 'out1', 'out2'} (see the module docstring)."""
    from ptdm_spark.cli import main
    from tests.conftest import overrides_for

    base = [a for o in overrides_for(Path(cfg.lakehouse.root)) for a in ("--set", o)]

    def ptdm(*args: str) -> int:
        return main([args[0], *base, "--set", SHARD, *args[1:]])

    tmp = tmp_path_factory.mktemp("share")
    first = _make(tmp / "src1", range(24), grey=range(100, 103))
    grey = {k for k, (lb, arr) in first.items() if (arr[:, :, 0] == arr[:, :, 1]).all()}
    assert ptdm("run", str(tmp / "src1"), "--dataset", DS) == 0
    assert ptdm("release", "create", "v1", "--dataset", DS, "--note", "first cut") == 0
    out1, out2 = tmp / "out1", tmp / "out2"
    for fmt in FORMATS:
        target = out1 / ("v1.zip" if fmt == "zip" else fmt)
        assert ptdm("export", "--dataset", DS, "--release", "v1", "--format", fmt, "--out", str(target)) == 0
    second = _make(tmp / "src2", range(200, 206))
    assert ptdm("run", str(tmp / "src2"), "--dataset", DS, "--set",
                "curate.exclude_flags=[near_constant, grayscale]") == 0
    assert ptdm("release", "create", "v2", "--dataset", DS) == 0
    for fmt in ("zip", "webdataset", "parquet"):  # v1 again, after the newer runs
        target = out2 / ("v1.zip" if fmt == "zip" else fmt)
        assert ptdm("export", "--dataset", DS, "--release", "v1", "--format", fmt, "--out", str(target)) == 0
    return {"first": first, "grey": grey, "second": second, "out1": out1, "out2": out2, "tmp": tmp}


def _release(spark, cfg, name):
    from pyspark.sql import functions as F

    return spark.read.format("delta").load(cfg.lakehouse.table_path(DS, "releases")).filter(F.col("name") == name).collect()


def _curated_at(spark, cfg, version) -> dict[str, tuple[str, str]]:
    """{image_id: (label, split)} of curated at ``version``, as Spark's Delta reader sees it."""
    rows = (spark.read.format("delta").option("versionAsOf", version)
            .load(cfg.lakehouse.table_path(DS, "curated")).select("image_id", "label", "split").collect())
    return {r.image_id: (r.label, r.split) for r in rows}


@pytest.fixture(scope="module")
def v1(h, spark, cfg):
    (rel,) = _release(spark, cfg, "v1")
    return rel, _curated_at(spark, cfg, rel.table_versions["curated"])


def _counts(rows: dict[str, tuple[str, str]]) -> Counter:
    return Counter((split, label) for label, split in rows.values())


def test_release_counts_digest_and_run(h, v1, spark, cfg):
    rel, cur = v1
    assert set(cur) == set(h["first"])  # every image made in run 1, the grey ones too
    assert {iid: lb for iid, (lb, _) in cur.items()} == {iid: lb for iid, (lb, _) in h["first"].items()}
    assert {(c.split, c.label): c.images for c in rel.counts} == dict(_counts(cur))
    assert rel.images == len(h["first"]) == 27
    lines = "".join(f"{iid}\t{lb}\t{sp}\n" for iid, (lb, sp) in sorted(cur.items()))
    assert rel.digest == hashlib.sha256(lines.encode()).hexdigest()
    assert [(c["label"], c["index"]) for c in rel.classes] == [(lb, i) for i, lb in enumerate(LABELS)]
    assert rel.note == "first cut" and {"curated", "images", "raw_images", "runs"} <= set(rel.table_versions)
    # The release's commit carries the run id of a succeeded `release` run.
    from delta.tables import DeltaTable

    commits = DeltaTable.forPath(spark, cfg.lakehouse.table_path(DS, "releases")).history().collect()
    first = min(commits, key=lambda c: c.version)
    run_id = json.loads(first.userMetadata)["run_id"]
    runs = spark.read.format("delta").load(cfg.lakehouse.table_path(DS, "runs")).filter(f"run_id = '{run_id}'").collect()
    assert [(r.job, r.status) for r in runs] == [("release", "succeeded")] and run_id == rel.run_id


def test_release_is_immutable(h, v1, ptdm, spark, cfg):
    status, out = ptdm("release", "create", "v1", "--dataset", DS, "--note", "again")
    assert status == 2 and "exists already" in out and len(out.strip().splitlines()) == 1
    rows = _release(spark, cfg, "v1")
    assert len(rows) == 1 and rows[0].digest == v1[0].digest and rows[0].note == "first cut"


def test_diff_counts_and_rows(h, ptdm):
    status, out = ptdm("release", "diff", "v1", "v2", "--dataset", DS)
    assert status == 0
    counts = {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines() if ln.startswith("  ")}
    assert counts == {"added": 6, "removed": 3, "relabelled": 0, "moved": 0}
    status, out = ptdm("release", "diff", "v1", "v2", "--dataset", DS, "--format", "json")
    rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert {r["image_id"] for r in rows if r["change"] == "added"} == set(h["second"])
    assert {r["image_id"] for r in rows if r["change"] == "removed"} == h["grey"]
    assert {r["label_b"] for r in rows if r["change"] == "added"} == set(LABELS)


def _decoded(data: bytes) -> np.ndarray:
    from ptdm_spark.imaging.cv import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]


def test_folders_export(h, v1):
    rel, cur = v1
    root = h["out1"] / "folders"
    images = [p for p in root.rglob("*.png")]
    assert Counter((p.parts[-3], p.parts[-2]) for p in images) == _counts(cur)
    for p in images:
        assert p.stem in cur and cur[p.stem] == (p.parts[-2], p.parts[-3])
        assert np.array_equal(_decoded(p.read_bytes()), h["first"][p.stem][1])
    manifest = list(csv.DictReader(io.StringIO((root / "manifest.csv").read_text())))
    assert {r["image_id"]: (r["label"], r["split"]) for r in manifest} == cur
    assert {r["label"]: int(r["label_index"]) for r in manifest} == {lb: i for i, lb in enumerate(LABELS)}
    info = json.loads((root / "release.json").read_text())
    assert info["release"] == "v1" and info["digest"] == rel.digest and info["table_versions"] == dict(rel.table_versions)
    # sha256sum itself accepts the manifest of hashes.
    done = subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = {ln.split("  ", 1)[1] for ln in (root / "MANIFEST.sha256").read_text().splitlines()}
    assert listed == {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - {"MANIFEST.sha256"}


def test_zip_export(h, v1):
    _, cur = v1
    with zipfile.ZipFile(h["out1"] / "v1.zip") as z:
        assert z.testzip() is None
        names = [n for n in z.namelist() if n.endswith(".png")]
        assert Counter(tuple(n.split("/")[:2]) for n in names) == _counts(cur)
        for n in names:
            iid = n.rsplit("/", 1)[1][:-4]
            assert cur[iid] == (n.split("/")[1], n.split("/")[0])
            assert np.array_equal(_decoded(z.read(n)), h["first"][iid][1])
        assert {"manifest.csv", "release.json", "MANIFEST.sha256"} <= set(z.namelist())
        assert all(zi.date_time == (1980, 1, 1, 0, 0, 0) for zi in z.infolist())


def test_webdataset_export_reads_with_webdataset(h, v1):
    import webdataset as wds

    rel, cur = v1
    root = h["out1"] / "webdataset"
    shards = sorted(str(p) for p in root.glob("*.tar"))
    assert len([s for s in shards if "/train-" in s]) > 1  # cut at export.shard_bytes
    seen = {}
    for sample in wds.WebDataset(shards, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        assert meta["image_id"] == sample["__key__"]
        assert Path(sample["__url__"]).name.startswith(meta["split"] + "-")
        assert np.array_equal(_decoded(sample["png"]), h["first"][meta["image_id"]][1])
        assert meta["label_index"] == LABELS.index(meta["label"])
        seen[meta["image_id"]] = (meta["label"], meta["split"])
    assert seen == cur
    with tarfile.open(shards[0]) as t:
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in t.getmembers()} == {(0, 0, 0, "", "")}


def test_parquet_csv_jsonl_exports(h, v1):
    _, cur = v1
    root = h["out1"] / "parquet"
    got = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        table = pq.read_table(str(split_dir)).to_pylist()
        for r in table:
            assert r["split"] == split_dir.name
            assert np.array_equal(_decoded(r["image"]), h["first"][r["image_id"]][1])
            got[r["image_id"]] = (r["label"], r["split"])
    assert got == cur
    rows = list(csv.DictReader(io.StringIO((h["out1"] / "csv" / "manifest.csv").read_text())))
    assert {r["image_id"]: (r["label"], r["split"]) for r in rows} == cur
    lines = [json.loads(ln) for ln in (h["out1"] / "jsonl" / "manifest.jsonl").read_text().splitlines()]
    assert {r["image_id"]: (r["label"], r["split"]) for r in lines} == cur
    assert sorted(p.name for p in (h["out1"] / "csv").iterdir()) == ["MANIFEST.sha256", "manifest.csv", "release.json"]


def _tree(root: Path) -> dict[str, bytes]:
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["v1.zip", "webdataset", "parquet"])
def test_old_release_exports_byte_identical_after_new_runs(h, name):
    first, again = _tree(h["out1"] / name), _tree(h["out2"] / name)
    assert first and sorted(first) == sorted(again)
    assert [p for p in first if first[p] != again[p]] == []


def test_verify_catches_a_changed_byte(h, ptdm):
    copy = h["tmp"] / "tampered"
    shutil.copytree(h["out1"] / "folders", copy)
    assert ptdm("export", "verify", str(copy))[0] == 0
    victim = sorted(copy.rglob("*.png"))[3]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    status, out = ptdm("export", "verify", str(copy))
    assert status == 1 and f"changed: {victim.relative_to(copy)}" in out
    zcopy = h["tmp"] / "tampered.zip"
    raw = bytearray((h["out1"] / "v1.zip").read_bytes())
    raw[200] ^= 0x01  # inside the first stored image
    zcopy.write_bytes(bytes(raw))
    status, out = ptdm("export", "verify", str(zcopy))
    assert status == 1 and "changed:" in out


def test_interrupted_export_rerun_completes(h, ptdm, v1):
    _, cur = v1
    target = h["tmp"] / "resumed"
    shutil.copytree(h["out1"] / "folders", target)
    # An interrupted run: the hashes and release.json not yet written, half the images missing,
    # one half-written file.
    for p in (target / "MANIFEST.sha256", target / "release.json"):
        p.unlink()
    (target / ".ptdm-export").write_bytes((h["out1"] / "folders" / "release.json").read_bytes())
    pngs = sorted(target.rglob("*.png"))
    for p in pngs[::2]:
        p.unlink()
    (pngs[0].parent / (pngs[0].name + ".part")).write_bytes(b"half")
    status, _ = ptdm("export", "--dataset", DS, "--release", "v1", "--format", "folders", "--out", str(target),
                     "--set", SHARD)
    assert status == 0
    assert _tree(target) == _tree(h["out1"] / "folders")
    # A folder holding something else is refused before any work.
    status, out = ptdm("export", "--dataset", DS, "--release", "v2", "--format", "folders", "--out", str(target))
    assert status == 2 and "not empty" in out
    # A release made before any ptdm augment has no copies to add: one line, nothing written.
    status, out = ptdm("export", "--dataset", DS, "--release", "v1", "--format", "folders", "--with-augmented",
                       "--out", str(h["tmp"] / "aug"))
    assert status == 2 and "has no augmented copies" in out and not (h["tmp"] / "aug").exists()


def test_loader_in_one_process(h, v1, cfg):
    from ptdm_spark.sharing.loader import CuratedDataset

    _, cur = v1
    ds = CuratedDataset(cfg.lakehouse.root, DS, release="v1", split="train")
    train = {iid: lb for iid, (lb, sp) in cur.items() if sp == "train"}
    assert ds.classes == list(LABELS) and len(ds) == len(train)
    got = {}
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.dtype == np.uint8 and image.shape == (40, 40, 3)
        assert np.array_equal(image, h["first"][ds.image_ids[i]][1])
        got[ds.image_ids[i]] = ds.classes[label]
    assert got == train
    streamed = [(iid, int(lb)) for b in ds.iter_batches(5) for iid, lb in zip(b["image_id"], b["label"])]
    assert dict(streamed) == {iid: LABELS.index(lb) for iid, lb in train.items()} and len(streamed) == len(train)
    # The release pins the old version: v1's grey images are there although curated now excludes them.
    assert h["grey"] & {iid for iid, (_, sp) in cur.items() if sp == "train"} <= set(ds.image_ids)


def test_loader_in_two_worker_processes(h, v1, cfg):
    from ptdm_spark.sharing.loader import CuratedDataset
    from tests.sharing_workers import read_items

    _, cur = v1
    ds = CuratedDataset(cfg.lakehouse.root, DS, release="v1", split=None)
    chunks = [list(range(0, len(ds), 2)), list(range(1, len(ds), 2))]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(read_items, [(ds, c) for c in chunks])
    items = [it for part, _ in results for it in part]
    assert not any(imported for _, imported in results)  # no worker imported pyspark
    assert {iid: lb for iid, lb, _, _ in items} == {iid: lb for iid, (lb, _) in cur.items()}
    assert len(items) == len(cur)
    for iid, _, digest, shape in items:
        assert shape == (40, 40, 3)
        assert digest == hashlib.sha256(np.ascontiguousarray(h["first"][iid][1]).tobytes()).hexdigest()
