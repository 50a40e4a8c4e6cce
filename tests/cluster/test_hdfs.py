"""The pipeline over a real HDFS: upload over WebHDFS, ingest from hdfs://, lakehouse on hdfs://;
then the trainers' path (augment, release, export, loader), analyze, and an erasure on that
lakehouse.

One module fixture makes the HDFS dataset (and its local twin) once; the erasure test runs last
and changes the HDFS dataset, so it must stay after the comparison in this file."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

import pytest

from tests.spark.test_erase import parquet_hits
from tests.spark.test_pipeline import make_mixed

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.spark]


@pytest.fixture(scope="module")
def on_hdfs(hdfs, spark, cfg, tmp_path_factory, ptdm_module):
    ptdm = ptdm_module
    local = tmp_path_factory.mktemp("hdfs") / "mixed"
    make_mixed(local)
    # names Spark's own listing hides or mangles on HDFS too: a camera name, a space and a '#'
    (local / "cats" / "_DSC0001.png").write_bytes((local / "dogs" / "b.jpg").read_bytes())
    (local / "cats" / "with space #1.png").write_bytes((local / "birds" / "d.webp").read_bytes())
    landing = f"{hdfs}/landing/{uuid.uuid4().hex[:8]}"
    uploads = [ptdm("upload", str(local), landing), ptdm("upload", str(local), landing)]
    root = f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}"
    runs = [ptdm("run", landing, "--dataset", "onhdfs", "--set", f"lakehouse.root={root}"),
            ptdm("run", str(local), "--dataset", "onlocal")]
    return {"local": local, "root": root, "uploads": uploads, "runs": runs, "ptdm": ptdm,
            "cfg": dataclasses.replace(cfg, lakehouse=dataclasses.replace(cfg.lakehouse, root=root))}


def test_upload_then_pipeline_on_hdfs_matches_local(on_hdfs, spark, cfg):
    from ptdm_spark import report

    (s1, out1), (s2, out2) = on_hdfs["uploads"]
    assert s1 == 0 and "16 copied" in out1, out1
    assert s2 == 0 and "0 copied" in out2 and "16 already there" in out2, out2  # resumable
    for status, out in on_hdfs["runs"]:
        assert status == 0, out
    root = on_hdfs["root"]
    on_h = report.accounting(spark, on_hdfs["cfg"], "onhdfs")
    on_l = report.accounting(spark, cfg, "onlocal")
    assert on_h["ok"] and on_l["ok"]
    assert spark.read.format("delta").load(f"{root}/onhdfs/raw_images").count() == 16  # + notes.txt, two odd names
    same = ("raw_objects", "raw_distinct", "images", "process_rejects", "duplicates", "excluded", "curated",
            "ingest_rejects", "process_rejects_by", "duplicates_by")
    assert {k: on_h[k] for k in same} == {k: on_l[k] for k in same}
    # the catalog points at the HDFS table
    assert spark.sql("SELECT count(*) AS n FROM onhdfs.curated").first().n == on_h["curated"]


def test_augment_release_export_and_loader_on_hdfs(on_hdfs, spark, hdfs):
    """Trainers' path on the hdfs:// lakehouse: augment train, a release, an export with the copies
    written to hdfs:// and verified there, and the Spark-free loader reading the lakehouse over
    HDFS. The truth: the packaged recipe applied to each curated train image on the driver."""
    import io
    import json
    import tarfile

    from ptdm_spark.imaging import augment as A
    from ptdm_spark.pipeline.augment import recipe_text
    from ptdm_spark.sharing.loader import CuratedDataset

    ptdm, root = on_hdfs["ptdm"], on_hdfs["root"]
    lh = ("--set", f"lakehouse.root={root}")
    status, out = ptdm("augment", "--dataset", "onhdfs", "--recipe", "basic", "--copies", "1", *lh)
    assert status == 0, out
    status, out = ptdm("release", "create", "h1", "--dataset", "onhdfs", *lh)
    assert status == 0, out
    cur = {r.image_id: r for r in spark.read.format("delta").load(f"{root}/onhdfs/curated").collect()}
    recipe = A.Recipe.from_yaml(recipe_text(None, "basic")[0])
    copies = {}
    for iid, r in cur.items():
        if r.split == "train":
            data = A.augment(bytes(r.image), recipe, recipe.seed, iid, 0).image
            copies[hashlib.sha256(data).hexdigest()] = (data, r.label, iid)
    assert copies

    target = f"{hdfs}/exports/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("export", "--dataset", "onhdfs", "--release", "h1", "--format", "webdataset",
                       "--with-augmented", "--out", target, *lh)
    assert status == 0 and f"({len(copies)} augmented)" in out, out
    status, out = ptdm("export", "verify", target, *lh)
    assert status == 0 and "OK" in out, out
    samples = {}
    for row in spark.read.format("binaryFile").load(f"{target}/*.tar").collect():
        with tarfile.open(fileobj=io.BytesIO(bytes(row.content))) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".json"):
                    samples[m.name[:-5]] = json.loads(tar.extractfile(m).read()).get("source_id")
    assert samples == {**{iid: None for iid in cur}, **{iid: src for iid, (_, _, src) in copies.items()}}

    # the one-file format, streamed through the driver into HDFS
    status, out = ptdm("export", "--dataset", "onhdfs", "--release", "h1", "--format", "zip",
                       "--out", f"{target}.zip", *lh)
    assert status == 0, out
    status, out = ptdm("export", "verify", f"{target}.zip", *lh)
    assert status == 0 and "OK" in out, out
    (zipped,) = [bytes(r.content) for r in spark.read.format("binaryFile").load(f"{target}.zip").collect()]
    import zipfile

    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        names = {n.rsplit("/", 1)[-1].split(".")[0] for n in z.namelist() if n.count("/") == 2}
    assert names == set(cur)

    ds = CuratedDataset(root, "onhdfs", release="h1", split="train", decode=False, with_augmented=True)
    got = {ds.image_ids[i]: (ds[i][0], ds.classes[ds[i][1]]) for i in range(len(ds))}
    assert got == {**{iid: (bytes(r.image), r.label) for iid, r in cur.items() if r.split == "train"},
                   **{iid: (data, lb) for iid, (data, lb, _) in copies.items()}}


def test_share_served_from_hdfs_to_the_stock_client(on_hdfs, spark, tmp_path):
    """A release of the hdfs:// lakehouse (h1, made by the test above) shared and served: the
    share tables written to HDFS with deltalake, the server reading the Delta log and the Parquet
    files from HDFS (no libhdfs, no JVM), read by the stock delta_sharing client."""
    import delta_sharing

    from tests.spark.test_share_server import _free_port, _start, _stop

    ptdm, root = on_hdfs["ptdm"], on_hdfs["root"]
    lh = ("--set", f"lakehouse.root={root}")
    status, out = ptdm("share", "create", "hs", "--dataset", "onhdfs", "--release", "h1", *lh)
    assert status == 0, out
    port, profile = _free_port(), tmp_path / "rita.share"
    status, out = ptdm("share", "grant", "hs", "--recipient", "rita", "--out", str(profile),
                       "--endpoint", f"http://127.0.0.1:{port}/delta-sharing", *lh)
    assert status == 0, out
    proc = _start(root, port, tmp_path / "serve.log")
    try:
        got = [(t.share, t.schema, t.name) for t in delta_sharing.SharingClient(str(profile)).list_all_tables()]
        df = delta_sharing.load_as_pandas(f"{profile}#hs.onhdfs.curated")
    finally:
        _stop(proc)
    assert got == [("hs", "onhdfs", "curated")]
    (rel,) = spark.read.format("delta").load(f"{root}/onhdfs/releases").filter("name = 'h1'").collect()
    want = spark.read.format("delta").option("versionAsOf", rel.table_versions["curated"]) \
        .load(f"{root}/onhdfs/curated").select("image_id", "label", "image").collect()
    assert len(df) == len(want)
    assert {r.image_id: (r.label, bytes(r.image)) for r in df.itertuples()} == \
        {r.image_id: (r.label, bytes(r.image)) for r in want}


def test_analyze_on_hdfs_writes_the_report_there_and_a_local_copy(on_hdfs, spark):
    """analyze on the hdfs:// lakehouse: its tables and report.html under <root>/<dataset>/_reports
    on HDFS, and a local copy whose path the command prints."""
    import re
    from pathlib import Path

    ptdm, root = on_hdfs["ptdm"], on_hdfs["root"]
    status, out = ptdm("analyze", "--dataset", "onhdfs", "--set", f"lakehouse.root={root}")
    assert status == 0, out
    uri = re.search(r"^report: (\S+)$", out, re.M).group(1)
    local = Path(re.search(r"^report \(local copy\): (\S+)$", out, re.M).group(1))
    assert uri.startswith(f"{root}/onhdfs/_reports/curated-v") and uri.endswith("report.html")
    (on_hdfs_html,) = [bytes(r.content) for r in spark.read.format("binaryFile").load(uri).collect()]
    assert local.read_bytes() == on_hdfs_html and b"<html" in on_hdfs_html.lower()
    curated = spark.read.format("delta").load(f"{root}/onhdfs/curated").count()
    stats = spark.read.format("delta").load(f"{root}/onhdfs/stats")
    assert stats.filter("scope = 'dataset' AND metric = 'count'").first().value == curated


def test_erase_on_hdfs_leaves_no_byte_in_any_parquet_file(on_hdfs, spark, tmp_path):
    """`ptdm erase` of the image behind dogs/b.jpg and cats/_DSC0001.png (the same bytes: one
    image, two source objects) on the hdfs:// lakehouse; then the dataset folder is copied out of
    HDFS and every Parquet file read with pyarrow: neither the id, nor the file's bytes, nor the
    normalized image's; `erase --verify` (which reads HDFS itself) says absent."""
    ptdm, root = on_hdfs["ptdm"], on_hdfs["root"]
    lh = ("--set", f"lakehouse.root={root}")
    data = (on_hdfs["local"] / "dogs" / "b.jpg").read_bytes()
    target = hashlib.sha256(data).hexdigest()
    curated = lambda: {r.image_id for r in spark.read.format("delta").load(f"{root}/onhdfs/curated")  # noqa: E731
                       .select("image_id").collect()}
    before = curated()
    assert target in before
    (normalized,) = [r.image for r in spark.read.format("delta").load(f"{root}/onhdfs/images")
                     .filter(f"image_id = '{target}'").collect()]

    status, out = ptdm("erase", "--verify", "--dataset", "onhdfs", "--image-id", target, *lh)
    assert status == 1 and "FOUND" in out, out
    status, out = ptdm("erase", "--dataset", "onhdfs", "--image-id", target, "--reason", "hdfs test", *lh)
    assert status == 0 and "2 source object(s)" in out, out
    status, out = ptdm("erase", "--verify", "--dataset", "onhdfs", "--image-id", target, *lh)
    assert status == 0 and "absent" in out, out

    jvm = spark._jvm
    src = jvm.org.apache.hadoop.fs.Path(f"{root}/onhdfs")
    fs = src.getFileSystem(spark._jsc.hadoopConfiguration())
    fs.copyToLocalFile(False, src, jvm.org.apache.hadoop.fs.Path((tmp_path / "copy").as_uri()), True)
    folder = tmp_path / "copy"
    assert list(folder.rglob("*.parquet")), "the copy out of HDFS holds the dataset's files"
    needles = {"strings": {target}, "digests": {target, hashlib.sha256(normalized).hexdigest()}, "raw": {data}}
    assert parquet_hits(folder, **needles) == []
    assert curated() == before - {target}
