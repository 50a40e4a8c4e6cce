"""``ptdm watch`` and ``ptdm collect`` with hdfs:// on both sides (landing folder / URL list,
and the lakehouse), against a real HDFS and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import uuid

import pytest

from tests.http_images import ImageServer, png
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.spark]


def test_watch_once_and_collect_over_hdfs(hdfs, spark, tmp_path, ptdm):
    local = tmp_path / "landing"
    names = ["cats/a b#1.png", "cats/_DSC0001.PNG", "dogs/2.png"]
    for i, name in enumerate(names):
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(encode(photo(700 + i, 40, 48)))
    landing = f"{hdfs}/landing/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("upload", str(local), landing)
    assert status == 0, out
    root = f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("watch", landing, "--dataset", "hwatch", "--once", "--set", f"lakehouse.root={root}")
    assert status == 0, out
    rows = spark.read.format("delta").load(f"{root}/hwatch/raw_images").collect()
    assert {r.source_uri for r in rows} == {f"{landing}/{n}" for n in names}
    assert {r.label for r in rows} == {"cats", "dogs"}

    with ImageServer() as server:
        lst = tmp_path / "urls"
        lst.mkdir()
        (lst / "urls.csv").write_text("url,label\n" + "".join(f"{server.url(f'/img/{i}.png')},x\n" for i in range(3))
                                      + f"{server.url('/missing.png')},x\n")
        status, out = ptdm("upload", str(lst), f"{landing}-urls")
        assert status == 0, out
        status, out = ptdm("collect", f"{landing}-urls/urls.csv", "--dataset", "hcollect",
                           "--set", f"lakehouse.root={root}")
        assert status == 0, out
    raw = {r.source_uri: r.content for r in spark.read.format("delta").load(f"{root}/hcollect/raw_images").collect()}
    assert raw == {server.url(f"/img/{i}.png"): png(i) for i in range(3)}
    rej = spark.read.format("delta").load(f"{root}/hcollect/rejects").collect()
    assert [(r.source_uri, r.reason) for r in rej] == [(server.url("/missing.png"), "http_404")]
