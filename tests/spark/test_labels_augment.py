"""Labels (corrections, history, classes, multi-label policies, suspects) and seeded augmentation
(determinism across partitionings, lineage, train only, reruns) on one small dataset.

The dataset: 30 distinct photos in folders ants/ bees/ cats/ (10 each), plus two images whose
source objects disagree: M (ants/m.png, cats/m1.png, cats/m2.png: first = ants, majority = cats)
and T (ants/t.png, bees/t.png: a tie).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ptdm_spark.imaging import augment as A
from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

DS = "labaug"
CLASSES = ("ants", "bees", "cats")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def table(spark, cfg, name):
    return spark.read.format("delta").load(cfg.lakehouse.table_path(DS, name))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, spark, cfg):
    folder = tmp_path_factory.mktemp("labaug")
    files: dict[str, bytes] = {}
    for i in range(30):
        files[f"{CLASSES[i % 3]}/p{i:02d}.png"] = encode(photo(100 + i, 40, 48))
    m, t = encode(photo(500, 40, 48)), encode(photo(501, 40, 48))
    files.update({"ants/m.png": m, "cats/m1.png": m, "cats/m2.png": m, "ants/t.png": t, "bees/t.png": t})
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    from ptdm_spark.cli import main
    from tests.conftest import overrides_for

    sets = [a for o in overrides_for(Path(cfg.lakehouse.root)) for a in ("--set", o)]
    assert main(["run", str(folder), "--dataset", DS, *sets]) == 0
    return {"folder": folder, "files": files, "m": sha(m), "t": sha(t)}


def by_id(df, *cols):
    return {r["image_id"]: (r[cols[0]] if len(cols) == 1 else tuple(r[c] for c in cols)) for r in df.collect()}


def test_classes_indices_and_counts_after_curate(spark, cfg, dataset):
    classes = {r["label"]: (r["index"], r["images"]) for r in table(spark, cfg, "classes").collect()}
    # independent truth: the folders we wrote (M and T arrive as ants: the smallest source path)
    want = {"ants": 10 + 2, "bees": 10, "cats": 10}
    assert {k: v[1] for k, v in classes.items()} == want
    assert {k: v[0] for k, v in classes.items()} == {"ants": 0, "bees": 1, "cats": 2}


def test_policies_first_majority_drop_ambiguous(spark, cfg, dataset):
    import dataclasses

    from ptdm_spark.config import LabelsConfig
    from ptdm_spark.pipeline.labels import current_labels
    from ptdm_spark.runs import Run

    got = {}
    for policy in ("first", "majority", "drop_ambiguous"):
        c = dataclasses.replace(cfg, labels=LabelsConfig(policy))
        got[policy] = by_id(current_labels(spark, c.labels, Run("t", DS, c)), "label", "dropped")
    m, t = dataset["m"], dataset["t"]
    assert got["first"][m] == ("ants", False) and got["first"][t] == ("ants", False)
    assert got["majority"][m] == ("cats", False) and got["majority"][t] == ("ants", False)  # tie -> first
    assert got["drop_ambiguous"][m][1] and got["drop_ambiguous"][t][1]
    # the 30 unambiguous images are labelled by their folder under every policy
    for rel, data in dataset["files"].items():
        if "/p" in rel:
            for policy in got:
                assert got[policy][sha(data)] == (rel.split("/")[0], False)


@pytest.fixture(scope="module")
def imported(spark, cfg, dataset, tmp_path_factory):
    """One corrections file: an image relabelled by id, one by source_uri to a new class, an
    unknown id, a row without a label, and T named twice with the same label."""
    files, folder = dataset["files"], dataset["folder"]
    before = by_id(table(spark, cfg, "curated"), "label", "split")
    a = sha(files["ants/p00.png"])
    b_uri = "file:" + str(folder / "bees/p01.png")
    rows = [
        {"image_id": a, "source_uri": "", "label": "bees", "reason": "looks like a bee", "annotator": "ann"},
        {"image_id": "", "source_uri": b_uri, "label": "wasps", "reason": "new class", "annotator": "bob"},
        {"image_id": "f" * 64, "source_uri": "", "label": "cats", "reason": "", "annotator": ""},
        {"image_id": sha(files["cats/p02.png"]), "source_uri": "", "label": "", "reason": "", "annotator": ""},
        {"image_id": sha(files["cats/p05.png"]), "source_uri": "", "label": "cats", "reason": "same", "annotator": ""},
    ]
    path = tmp_path_factory.mktemp("fix") / "fixes.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return {"path": path, "before": before, "a": a, "b": sha(files["bees/p01.png"])}


def test_label_import_records_changes_reports_unknown_and_curate_keeps_splits(spark, cfg, ptdm, imported):
    status, out = ptdm("labels", "import", str(imported["path"]), "--dataset", DS, "--source", "review1")
    assert status == 0, out
    assert "2 label(s) changed, 1 unknown id(s), 1 without a label" in out
    assert "f" * 64 in out  # the unknown id is named
    hist = {r["image_id"]: r for r in table(spark, cfg, "label_history").collect()}
    a, b = imported["a"], imported["b"]
    assert set(hist) == {a, b}
    assert (hist[a]["old_label"], hist[a]["new_label"], hist[a]["annotator"]) == ("ants", "bees", "ann")
    assert (hist[b]["old_label"], hist[b]["new_label"], hist[b]["source"]) == ("bees", "wasps", "review1")
    # the label each image arrived with is kept
    images = by_id(table(spark, cfg, "images"), "label")
    assert images[a] == "ants" and images[b] == "bees"
    # importing the same file again changes nothing
    status, out = ptdm("labels", "import", str(imported["path"]), "--dataset", DS, "--source", "review1")
    assert status == 0 and "0 label(s) changed" in out
    assert table(spark, cfg, "label_history").count() == 2

    status, out = ptdm("curate", "--dataset", DS)
    assert status == 0, out
    after = by_id(table(spark, cfg, "curated"), "label", "split")
    before = imported["before"]
    assert after[a] == ("bees", before[a][1]) and after[b] == ("wasps", before[b][1])  # relabelled, not moved
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    assert {k: v for k, v in after.items() if k not in (a, b)} == {k: v for k, v in before.items() if k not in (a, b)}

    classes = {r["label"]: (r["index"], r["images"]) for r in table(spark, cfg, "classes").collect()}
    assert classes == {"ants": (0, 11), "bees": (1, 10), "cats": (2, 10), "wasps": (3, 1)}


def test_label_misuse_is_one_line_exit_2(ptdm, dataset, tmp_path):
    status, out = ptdm("labels", "import", str(tmp_path / "nope.csv"), "--dataset", DS)
    assert status == 2 and "no such file" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na.png,cats\n")
    status, out = ptdm("labels", "import", str(bad), "--dataset", DS)
    assert status == 2 and "needs a column label and a column image_id or source_uri" in out
    status, out = ptdm("labels", "suspects", "--dataset", DS)
    assert status == 2 and "--out" in out


def test_suspects_lists_images_whose_sources_disagree(spark, cfg, ptdm, dataset, tmp_path):
    out_csv = tmp_path / "review" / "queue.csv"
    status, out = ptdm("labels", "suspects", "--dataset", DS, "--out", str(out_csv))
    assert status == 0, out
    rows = list(csv.DictReader(out_csv.open()))
    assert {r["image_id"] for r in rows if "sources_disagree" in r["suspect"]} == {dataset["m"], dataset["t"]}
    page = (tmp_path / "review" / "queue.html").read_text()
    assert page.count("data:image/png;base64,") == len(rows) and dataset["m"] in page


RECIPE = """
name: t1
seed: 3
copies: 2
ops:
  - {op: hflip, p: 0.5}
  - {op: rotate, degrees: 20}
  - {op: random_resized_crop, scale: [0.6, 1.0]}
  - {op: color_jitter, brightness: 0.3, contrast: 0.3, saturation: 0.3, hue: 0.05}
  - {op: gaussian_noise, std: [1, 4], p: 0.5}
  - {op: jpeg, quality: [60, 90], p: 0.3}
"""


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("recipe") / "t1.yaml"
    p.write_text(RECIPE)
    return p


def test_same_bytes_on_1_and_4_partitions(spark, cfg, dataset, recipe_file):
    from ptdm_spark import schemas
    from ptdm_spark.transforms import augment as t_augment

    r = A.Recipe.from_yaml(recipe_file.read_text())
    curated = table(spark, cfg, "curated")
    pairs = t_augment.todo(curated, spark.createDataFrame([], schemas.AUGMENTED), ("train",), 2, r.name, 3)
    got = []
    for parts in (1, 4):
        made = t_augment.augmented(pairs, r.to_json(), 3, parts)
        assert made.rdd.getNumPartitions() == parts
        got.append({(x["source_id"], x["copy"]): (x["image"], x["params"]) for x in made.collect()})
    assert got[0] == got[1] and len(got[0]) == 2 * curated.filter("split = 'train'").count()


def test_augment_train_only_with_lineage_and_rerun_adds_nothing(spark, cfg, ptdm, dataset, recipe_file):
    status, out = ptdm("augment", "--dataset", DS, "--recipe", str(recipe_file))
    assert status == 0, out
    aug = table(spark, cfg, "augmented").collect()
    cur = {r["image_id"]: r for r in table(spark, cfg, "curated").collect()}
    train = {k for k, r in cur.items() if r["split"] == "train"}
    assert len(aug) == 2 * len(train)
    assert {(a["source_id"], a["copy"]) for a in aug} == {(s, c) for s in train for c in (0, 1)}
    r = A.Recipe.from_yaml(recipe_file.read_text())
    for a in aug:
        src = cur[a["source_id"]]  # every source exists, with the same label and split
        assert (a["split"], a["label"]) == (src["split"], src["label"]) == ("train", src["label"])
        assert a["image_id"] == sha(a["image"]) and (a["recipe"], a["seed"]) == ("t1", 3)
        # the bytes are the recipe applied to the source, on the driver, with no Spark
        assert a["image"] == A.augment(bytes(src["image"]), r, 3, a["source_id"], a["copy"]).image
        rgb = A.decode_rgb(bytes(a["image"]))
        assert rgb.shape == A.decode_rgb(bytes(src["image"])).shape
        assert [p["op"] for p in json.loads(a["params"])]  # the drawn parameters are recorded
    assert any(a["encoding"] == "jpeg" for a in aug) and any(a["encoding"] == "png" for a in aug)
    assert len({a["image_id"] for a in aug}) == len(aug)
    # the run is recorded and the commit stamped with its id
    runs = spark.read.format("delta").load(cfg.lakehouse.table_path(DS, "runs")).filter("job = 'augment'").collect()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["counts"]["augmented"] == len(aug)
    hist = spark.sql(f"DESCRIBE HISTORY delta.`{cfg.lakehouse.table_path(DS, 'augmented')}`").collect()
    assert json.loads(hist[0]["userMetadata"])["run_id"] == runs[0]["run_id"]

    version = len(hist)
    status, out = ptdm("augment", "--dataset", DS, "--recipe", str(recipe_file))
    assert status == 0 and "0 copies added" in out
    assert table(spark, cfg, "augmented").count() == len(aug)
    assert len(spark.sql(f"DESCRIBE HISTORY delta.`{cfg.lakehouse.table_path(DS, 'augmented')}`").collect()) == version

    # one more copy index adds only that copy
    status, out = ptdm("augment", "--dataset", DS, "--recipe", str(recipe_file), "--copies", "3")
    assert status == 0 and f"{len(train)} copies added" in out


def test_augment_misuse_is_one_line_exit_2(ptdm, dataset, recipe_file, tmp_path):
    status, out = ptdm("augment", "--dataset", DS, "--recipe", str(recipe_file), "--splits", "tran")
    assert status == 2 and "curated has no such split" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("ops: [{op: twirl}]\n")
    status, out = ptdm("augment", "--dataset", DS, "--recipe", str(bad))
    assert status == 2 and "unknown op" in out
    assert np.array_equal(A.hflip(A.hflip(photo(1))), photo(1))


def test_augmented_copies_follow_a_relabelled_source(spark, cfg, ptdm, dataset, recipe_file, tmp_path):
    aug = table(spark, cfg, "augmented").collect()
    assert aug, "runs after the augment test"
    src = sorted({a["source_id"] for a in aug})[0]
    old = {a["label"] for a in aug if a["source_id"] == src}
    fix = tmp_path / "fix.jsonl"
    fix.write_text(json.dumps({"image_id": src, "label": "moths"}) + "\n")
    assert ptdm("labels", "import", str(fix), "--dataset", DS)[0] == 0
    assert ptdm("curate", "--dataset", DS)[0] == 0
    status, out = ptdm("augment", "--dataset", DS, "--recipe", str(recipe_file), "--copies", "3")
    assert status == 0 and "0 copies added" in out, out
    after = table(spark, cfg, "augmented").collect()
    assert old != {"moths"} and {a["label"] for a in after if a["source_id"] == src} == {"moths"}
    before = {(a["source_id"], a["copy"]): (a["image"], a["label"]) for a in aug}
    for a in after:  # no other copy changed, no bytes changed
        if a["source_id"] != src:
            assert (a["image"], a["label"]) == before[(a["source_id"], a["copy"])]
        else:
            assert a["image"] == before[(a["source_id"], a["copy"])][0]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_release_with_augmented_exports_and_loads_the_copies(spark, cfg, ptdm, dataset, recipe_file, tmp_path):
    """Runs after the augment tests (3 copies of every train image). The truth: the recipe applied
    to each curated train image on the driver, labelled as its source is."""
    import io
    import tarfile

    import pyarrow.parquet as pq

    from ptdm_spark.sharing.loader import CuratedDataset

    r = A.Recipe.from_yaml(recipe_file.read_text())
    cur = {c["image_id"]: c for c in table(spark, cfg, "curated").collect()}
    copies = {}
    for sid, src in cur.items():
        if src["split"] == "train":
            for c in range(3):
                data = A.augment(bytes(src["image"]), r, 3, sid, c).image
                copies[sha(data)] = (data, src["label"], sid, c)
    assert copies and not set(copies) & set(cur)
    status, out = ptdm("release", "create", "aug1", "--dataset", DS)
    assert status == 0, out

    status, out = ptdm("export", "--dataset", DS, "--release", "aug1", "--format", "folders", "--with-augmented",
                       "--out", str(tmp_path / "f"))
    assert status == 0 and f"{len(cur) + len(copies)} images ({len(copies)} augmented)" in out, out
    tree = _tree(tmp_path / "f")
    images = {k: v for k, v in tree.items() if k.count("/") == 2}
    want = {(s["split"], s["label"], iid): bytes(s["image"]) for iid, s in cur.items()}
    want.update({("train", lb, iid): data for iid, (data, lb, _, _) in copies.items()})
    assert {(k.split("/")[0], k.split("/")[1], k.split("/")[2].split(".")[0]): v for k, v in images.items()} == want
    manifest = {m["image_id"]: m for m in csv.DictReader(io.StringIO(tree["manifest.csv"].decode()))}
    assert set(manifest) == {k[2] for k in want}
    for iid, m in manifest.items():
        lineage = (m["source_id"], m["recipe"], m["seed"], m["copy"])
        assert lineage == ((copies[iid][2], "t1", "3", str(copies[iid][3])) if iid in copies else ("", "", "", ""))
    assert json.loads(tree["release.json"])["with_augmented"] is True

    status, out = ptdm("export", "--dataset", DS, "--release", "aug1", "--format", "webdataset", "--with-augmented",
                       "--out", str(tmp_path / "w"))
    assert status == 0, out
    samples = {}
    for shard in sorted((tmp_path / "w").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    samples[m.name[:-5]] = json.loads(tar.extractfile(m).read())
    assert set(samples) == {k[2] for k in want}
    for iid, (_, lb, sid, c) in copies.items():
        assert (samples[iid]["source_id"], samples[iid]["copy"], samples[iid]["seed"], samples[iid]["label"]) == \
            (sid, c, 3, lb)
    assert all("source_id" not in samples[iid] for iid in cur)

    status, out = ptdm("export", "--dataset", DS, "--release", "aug1", "--format", "parquet", "--with-augmented",
                       "--split", "train", "--out", str(tmp_path / "p"))
    assert status == 0, out
    rows = [x for f in sorted((tmp_path / "p").rglob("*.parquet")) for x in pq.read_table(f).to_pylist()]
    assert {x["image_id"]: (x["image"], x["source_id"], x["copy"]) for x in rows if x["source_id"]} == \
        {iid: (data, sid, c) for iid, (data, _, sid, c) in copies.items()}
    assert len(rows) == len(copies) + sum(s["split"] == "train" for s in cur.values())

    root = cfg.lakehouse.root
    plain = CuratedDataset(root, DS, release="aug1", split="train", decode=False)
    ds = CuratedDataset(root, DS, release="aug1", split="train", decode=False, with_augmented=True)
    train = {iid: s["label"] for iid, s in cur.items() if s["split"] == "train"}
    assert set(plain.image_ids) == set(train) and len(plain) == len(train)
    assert len(ds) == len(train) + len(copies)
    got = {ds.image_ids[i]: (ds[i][0], ds.classes[ds[i][1]], ds.source_ids[i]) for i in range(len(ds))}
    assert got == {**{iid: (bytes(cur[iid]["image"]), lb, None) for iid, lb in train.items()},
                   **{iid: (data, lb, sid) for iid, (data, lb, sid, _) in copies.items()}}
