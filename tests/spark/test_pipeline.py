"""The main job end to end on a mixed folder: every input ends in exactly one place."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.imagefiles import encode, photo, png_claiming

pytestmark = pytest.mark.spark


def make_mixed(folder: Path) -> dict[str, str]:
    """A folder of good, duplicate and broken files; returns {relative path: expected outcome}."""
    files = {
        "cats/a.png": (encode(photo(1)), "curated"),
        "cats/a_copy.png": (encode(photo(1)), "sha256-copy"),
        "cats/black.png": (encode(np.zeros((32, 32, 3), np.uint8)), "excluded"),
        "cats/bomb.png": (png_claiming(60000, 60000), "too_large"),
        "dogs/b.jpg": (encode(photo(2), ".jpg"), "curated"),
        "dogs/c.bmp": (encode(photo(3), ".bmp"), "curated-or-pixel-dup"),
        "dogs/c.png": (encode(photo(3), ".png"), "curated-or-pixel-dup"),
        "dogs/trunc.jpg": (encode(photo(4, 256, 256), ".jpg")[:3000], "truncated"),
        "dogs/empty.png": (b"", "empty"),
        "dogs/text.png": (b"hello, I am not a png", "not_image"),
        "dogs/random.jpg": (np.random.default_rng(0).bytes(2000), "not_image"),
        "dogs/notes.txt": (b"notes", "not_image"),  # read: its content decides
        "birds/tiny.png": (encode(np.full((4, 4, 3), 9, np.uint8)), "too_small"),
        "birds/d.webp": (encode(photo(5), ".webp"), "curated"),
    }
    for rel, (data, _) in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return {rel: outcome for rel, (_, outcome) in files.items()}


def table(spark, cfg, dataset, name):
    return spark.read.format("delta").load(cfg.lakehouse.table_path(dataset, name))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, spark, cfg):
    folder = tmp_path_factory.mktemp("mixed")
    expected = make_mixed(folder)
    from ptdm_spark.cli import main

    args = [a for o in _overrides(cfg) for a in ("--set", o)]
    assert main(["run", str(folder), "--dataset", "mixed", *args]) == 0
    return folder, expected


def _overrides(cfg):
    from tests.conftest import overrides_for

    return overrides_for(Path(cfg.lakehouse.root))


def test_every_input_ends_in_exactly_one_place(spark, cfg, mixed):
    folder, expected = mixed
    raw = table(spark, cfg, "mixed", "raw_images").collect()
    rejects = table(spark, cfg, "mixed", "rejects").collect()
    images = {r.image_id: r for r in table(spark, cfg, "mixed", "images").collect()}
    curated = {r.image_id for r in table(spark, cfg, "mixed", "curated").collect()}
    dups = {r.image_id: r for r in table(spark, cfg, "mixed", "duplicates").collect()}

    def rel(uri: str) -> str:
        return uri.split(str(folder) + "/", 1)[1]

    ingest_rej = {rel(r.source_uri): r.reason for r in rejects if r.stage == "ingest"}
    raw_by_rel = {rel(r.source_uri): r for r in raw}
    assert set(ingest_rej) | set(raw_by_rel) == set(expected)  # every file somewhere ...
    assert not set(ingest_rej) & set(raw_by_rel)  # ... and in one place only
    assert ingest_rej == {}

    proc_rej = {r.image_id: r for r in rejects if r.stage == "process"}
    for rel_path, outcome in expected.items():
        if rel_path in ingest_rej:
            continue
        iid = raw_by_rel[rel_path].image_id
        in_images, in_rej = iid in images, iid in proc_rej
        assert in_images != in_rej, rel_path  # exactly one of the two
        if outcome in ("empty", "not_image", "truncated", "too_large", "too_small"):
            assert proc_rej[iid].reason == outcome, (rel_path, proc_rej[iid].reason)
            assert proc_rej[iid].detail
        elif outcome == "excluded":
            assert "near_constant" in images[iid].flags and iid not in curated
        else:
            assert (iid in curated) != (iid in dups), rel_path
    # c.bmp and c.png: same pixels -> one kept, one pixel duplicate; a.png and its copy share an id.
    c_ids = {raw_by_rel["dogs/c.bmp"].image_id, raw_by_rel["dogs/c.png"].image_id}
    assert len([i for i in c_ids if i in dups]) == 1
    assert raw_by_rel["cats/a.png"].image_id == raw_by_rel["cats/a_copy.png"].image_id
    (dup,) = [dups[i] for i in c_ids if i in dups]
    assert dup.method == "pixel" and dup.kept_id in c_ids and dup.kept_id == min(c_ids)


def test_accounting_adds_up(spark, cfg, mixed):
    from ptdm_spark import report

    acc = report.accounting(spark, cfg, "mixed")
    assert acc["ok"]
    assert acc["raw_objects"] == 14 and acc["raw_distinct"] == 13
    assert acc["images"] == 6 and acc["process_rejects"] == 7
    assert acc["duplicates"] == 1 and acc["excluded"] == 1 and acc["curated"] == 4


def test_labels_from_folders(spark, cfg, mixed):
    labels = {r.source_uri.rsplit("/", 2)[1]: r.label for r in table(spark, cfg, "mixed", "raw_images").collect()}
    assert labels == {"cats": "cats", "dogs": "dogs", "birds": "birds"}
    cur = table(spark, cfg, "mixed", "curated").collect()
    assert {r.label for r in cur} <= {"cats", "dogs", "birds"}
    assert {r.split for r in cur} <= {"train", "val", "test"}


def test_images_hold_normalized_png_and_scores(spark, cfg, mixed):
    from ptdm_spark.imaging.cv import cv2

    row = table(spark, cfg, "mixed", "images").filter("format = 'webp'").first()
    assert row.encoding == "png" and bytes(row.image)[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imdecode(np.frombuffer(row.image, np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (row.out_height, row.out_width, 3)
    assert 0 < row.brightness < 1 and row.blur > 0 and row.entropy > 0
    assert row.phash is not None and row.dhash is not None


def test_rerun_adds_nothing_and_new_files_add_exactly_those(spark, cfg, mixed, ptdm):
    folder, _ = mixed
    counts = {t: table(spark, cfg, "mixed", t).count() for t in ("raw_images", "images", "rejects", "duplicates", "curated")}
    status, out = ptdm("run", str(folder), "--dataset", "mixed")
    assert status == 0
    assert {t: table(spark, cfg, "mixed", t).count() for t in counts} == counts
    extra = folder / "new"
    extra.mkdir()
    for i in range(100):
        (extra / f"{i}.png").write_bytes(encode(photo(1000 + i, 24, 24)))
    status, out = ptdm("run", str(folder), "--dataset", "mixed")
    assert status == 0
    assert table(spark, cfg, "mixed", "raw_images").count() == counts["raw_images"] + 100
    assert table(spark, cfg, "mixed", "images").count() == counts["images"] + 100
    assert "100 new" in out


def test_runs_ledger_and_commit_metadata(spark, cfg, mixed):
    from delta.tables import DeltaTable

    runs = table(spark, cfg, "mixed", "runs").collect()
    assert {r.job for r in runs} >= {"ingest", "process", "dedupe", "curate"}
    assert all(r.status == "succeeded" and r.config_hash == cfg.hash for r in runs)
    ingest = sorted((r for r in runs if r.job == "ingest"), key=lambda r: r.started_at)[0]
    assert ingest.counts["objects"] == 14 and ingest.output_versions["raw_images"] == 0
    hist = DeltaTable.forPath(spark, cfg.lakehouse.table_path("mixed", "raw_images")).history().collect()
    first = min(hist, key=lambda h: h.version)
    assert json.loads(first.userMetadata)["run_id"] == ingest.run_id


def test_second_delta_reader_sees_the_same_rows(spark, cfg, mixed):
    from deltalake import DeltaTable as RustDeltaTable

    for name in ("images", "curated", "rejects"):
        path = cfg.lakehouse.table_path("mixed", name).removeprefix("file://")
        theirs = RustDeltaTable(path).to_pyarrow_table().to_pydict()
        ours = table(spark, cfg, "mixed", name).collect()
        key = "source_uri" if name == "rejects" else "image_id"
        assert sorted(theirs[key]) == sorted(getattr(r, key) for r in ours)
        if name == "curated":
            by_id = {r.image_id: bytes(r.image) for r in ours}
            assert all(by_id[i] == img for i, img in zip(theirs["image_id"], theirs["image"]))


# --- other source kinds -----------------------------------------------------------------------


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()


def test_idx_cifar_and_archives(spark, cfg, tmp_path, ptdm):
    rng = np.random.default_rng(1)
    src = tmp_path / "src"
    src.mkdir()
    imgs = rng.integers(0, 255, (30, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 3
    (src / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(imgs)))
    (src / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    cifar = {b"data": rng.integers(0, 255, (5, 3072), dtype=np.uint8), b"labels": [0, 1, 2, 1, 0],
             b"filenames": [f"img{i}.png".encode() for i in range(5)]}
    (src / "cifar").mkdir()
    (src / "cifar" / "data_batch_1").write_bytes(pickle.dumps(cifar))
    (src / "cifar" / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"plane", b"car", b"bird"]}))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("red/x.png", encode(photo(20))), ("blue/y.png", encode(photo(21))), ("readme.md", b"hi")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (src / "pack.tar").write_bytes(buf.getvalue())
    with zipfile.ZipFile(src / "pack.zip", "w") as zf:
        zf.writestr("green/z.jpg", encode(photo(22), ".jpg"))
    (src / "broken.zip").write_bytes(b"PK\x03\x04 this is not really a zip")

    status, out = ptdm("run", str(src), "--dataset", "kinds", "--set", "ingest.label_names=[zero,one,two]")
    assert status == 0, out
    raw = table(spark, cfg, "kinds", "raw_images").collect()
    by_fmt = {}
    for r in raw:
        by_fmt.setdefault(r.source_format, []).append(r)
    assert len(by_fmt["idx"]) == 30 and len(by_fmt["cifar"]) == 5
    assert len(by_fmt["tar"]) == 3 and len(by_fmt["zip"]) == 1  # readme.md too: its content decides
    idx0 = [r for r in by_fmt["idx"] if r.source_uri.endswith("#0")][0]
    assert idx0.label == "zero"
    # label_names from the config win over batches.meta
    assert {r.label for r in by_fmt["cifar"]} == {"zero", "one", "two"}
    assert {r.label for r in by_fmt["tar"] if r.source_uri.endswith(".png")} == {"red", "blue"}
    assert any(r.source_uri.endswith("pack.tar!/red/x.png") for r in by_fmt["tar"])
    # IDX pixels survive: decode the PNG of image 0
    from ptdm_spark.imaging.cv import cv2

    dec = cv2.imdecode(np.frombuffer(idx0.content, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(dec, imgs[0])
    rej = {r.source_uri.rsplit("/", 1)[-1]: r.reason for r in table(spark, cfg, "kinds", "rejects").collect()}
    assert rej["readme.md"] == "not_image" and rej["broken.zip"] == "corrupt"
    assert table(spark, cfg, "kinds", "images").count() == 38


def test_labels_from_manifest(spark, cfg, tmp_path, ptdm):
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(4):
        (src / f"{i}.png").write_bytes(encode(photo(40 + i)))
    manifest = tmp_path / "labels.csv"
    manifest.write_text("path,label\n0.png,cat\n1.png,dog\n" + f"{src / '2.png'},cow\n")
    status, out = ptdm("ingest", str(src), "--dataset", "manifest", "--labels", str(manifest))
    assert status == 0, out
    got = {r.source_uri.rsplit("/", 1)[-1]: r.label for r in table(spark, cfg, "manifest", "raw_images").collect()}
    assert got == {"0.png": "cat", "1.png": "dog", "2.png": "cow", "3.png": None}


def test_manifest_without_label_column_is_usage_error(tmp_path, ptdm):
    src = tmp_path / "flat2"
    src.mkdir()
    (src / "0.png").write_bytes(encode(photo(50)))
    manifest = tmp_path / "bad.csv"
    manifest.write_text("path,klass\n0.png,cat\n")
    status, out = ptdm("ingest", str(src), "--dataset", "badmanifest", "--labels", str(manifest))
    assert status == 2 and "no column 'label'" in out


def test_listed_file_that_yields_no_object_is_unreadable(spark):
    """A file the listing found but whose read produced nothing (permission denied, vanished:
    binaryFile skips it under ignoreMissingFiles / ignoreCorruptFiles) becomes 'unreadable'."""
    from ptdm_spark import schemas
    from ptdm_spark.transforms import ingest

    expected = spark.createDataFrame([("file:/d/ok.png",), ("file:/d/gone.png",), ("file:/d/bad.txt",)], "path string")
    objects = spark.createDataFrame(
        [("file:/d/ok.png", "file", b"x", 1, None, "ok.png", None, None, None),
         ("file:/d/bad.txt", "file", None, 1, None, "bad.txt", None, "unsupported", "by name")],
        schemas.OBJECTS)
    rows = ingest.unreadable(expected, objects, objects.filter("error_reason IS NOT NULL"), "r1").collect()
    assert [(r.source_uri, r.reason, r.stage) for r in rows] == [("file:/d/gone.png", "unreadable", "ingest")]


def test_objects_over_the_byte_limit_are_rejected_at_ingest(spark, cfg, tmp_path, ptdm):
    src = tmp_path / "big"
    src.mkdir()
    (src / "small.png").write_bytes(encode(photo(70, 16, 16)))
    (src / "large.png").write_bytes(encode(photo(71, 400, 400)))
    status, out = ptdm("ingest", str(src), "--dataset", "bytelimit", "--set", "ingest.max_bytes=5000")
    assert status == 0, out
    rej = {r.source_uri.rsplit("/", 1)[-1]: (r.reason, r.stage) for r in table(spark, cfg, "bytelimit", "rejects").collect()}
    assert rej == {"large.png": ("too_large", "ingest")}
    assert [r.source_uri.rsplit("/", 1)[-1] for r in table(spark, cfg, "bytelimit", "raw_images").collect()] == ["small.png"]


def test_unwritable_lakehouse_is_one_clear_error_and_no_commit(tmp_path):
    """A lakehouse root that cannot be written (here: a file where a folder should be; root
    ignores permission bits) stops with one line, exit 2, before any table exists."""
    from tests.conftest import overrides_for, run_cli

    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    (src / "0.png").write_bytes(encode(photo(80)))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    sets = [a for o in overrides_for(blocker) for a in ("--set", o)]
    sets += ["--set", f"lakehouse.catalog_dir={tmp_path / 'cat'}"]
    proc = run_cli("run", str(tmp_path / "src"), "--dataset", "ro", *sets)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "is not a folder" in errors[0], proc.stderr[-2000:]  # checked before anything is created
    assert blocker.read_text() == "x"
