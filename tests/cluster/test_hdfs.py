"""The pipeline over a real HDFS: upload over WebHDFS, ingest from hdfs://, lakehouse on hdfs://."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from tests.spark.test_pipeline import make_mixed

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.spark]


def test_upload_then_pipeline_on_hdfs_matches_local(hdfs, spark, cfg, tmp_path, ptdm):
    from ptdm_spark import report

    local = tmp_path / "mixed"
    make_mixed(local)
    # names Spark's own listing hides or mangles on HDFS too: a camera name, a space and a '#'
    (local / "cats" / "_DSC0001.png").write_bytes((local / "dogs" / "b.jpg").read_bytes())
    (local / "cats" / "with space #1.png").write_bytes((local / "birds" / "d.webp").read_bytes())
    landing = f"{hdfs}/landing/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("upload", str(local), landing)
    assert status == 0 and "16 copied" in out, out
    status, out = ptdm("upload", str(local), landing)  # resumable: nothing left to copy
    assert status == 0 and "0 copied" in out and "16 already there" in out, out

    root = f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("run", landing, "--dataset", "onhdfs", "--set", f"lakehouse.root={root}")
    assert status == 0, out
    status, out = ptdm("run", str(local), "--dataset", "onlocal")
    assert status == 0, out

    cfg_hdfs = dataclasses.replace(cfg, lakehouse=dataclasses.replace(cfg.lakehouse, root=root))
    on_hdfs = report.accounting(spark, cfg_hdfs, "onhdfs")
    on_local = report.accounting(spark, cfg, "onlocal")
    assert on_hdfs["ok"] and on_local["ok"]
    assert spark.read.format("delta").load(f"{root}/onhdfs/raw_images").count() == 16  # + notes.txt, two odd names
    same = ("raw_objects", "raw_distinct", "images", "process_rejects", "duplicates", "excluded", "curated",
            "ingest_rejects", "process_rejects_by", "duplicates_by")
    assert {k: on_hdfs[k] for k in same} == {k: on_local[k] for k in same}
    # the catalog points at the HDFS table
    assert spark.sql("SELECT count(*) AS n FROM onhdfs.curated").first().n == on_hdfs["curated"]
