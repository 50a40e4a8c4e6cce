"""The pipeline over a real HDFS: upload over WebHDFS, ingest from hdfs://, lakehouse on hdfs://;
then an erasure on that lakehouse.

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
