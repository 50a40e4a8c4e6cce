"""HDFS faults: a DataNode stopped while a job runs."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from tests.conftest import PTDM, ROOT, overrides_for
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.spark, pytest.mark.slow]


def test_datanode_stopped_during_a_job(hdfs, ptdm, tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for i in range(200):
        (src / f"{i}.png").write_bytes(encode(photo(1500 + i, 256, 384)))
    landing = f"{hdfs}/landing/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("upload", str(tmp_path / "src"), landing)
    assert status == 0, out
    root = f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}"
    sets = [a for o in overrides_for(tmp_path / "unused") for a in ("--set", o)]
    args = [*PTDM, "run", landing, "--dataset", "dnfault", *sets,
            "--set", f"lakehouse.root={root}", "--set", f"lakehouse.catalog_dir={tmp_path / 'cat'}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stopped = False
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if not stopped and re.search(r"^\[ingest\] run ", line):
                subprocess.run([str(ROOT / "scripts" / "hdfs.sh"), "stop-datanode", "2"], check=True, timeout=60)
                stopped = True
        proc.wait(timeout=60)
        out = "".join(lines)
        assert stopped and proc.returncode == 0, out[-3000:]
        assert "accounting adds up" in out
        assert re.search(r"in images\s+200", out), out[-2000:]
    finally:
        subprocess.run([str(ROOT / "scripts" / "hdfs.sh"), "start-datanode", "2"], timeout=60)


def test_two_jobs_write_the_same_tables_at_once(hdfs, spark, tmp_path):
    """Two ptdm processes ingest two folders into one dataset on HDFS at the same time (each with
    its own catalog: embedded Derby admits one process). Both land; raw_images holds each file
    exactly once; a writer that lost a commit race retried (logged)."""
    folders = []
    for k in range(2):
        d = tmp_path / f"src{k}" / f"class{k}"
        d.mkdir(parents=True)
        for i in range(60):
            (d / f"{i}.png").write_bytes(encode(photo(3000 + 100 * k + i, 128, 192)))
        folders.append(d.parent)
    root = f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}"
    sets = [a for o in overrides_for(tmp_path / "unused") for a in ("--set", o)]
    procs = [subprocess.Popen([*PTDM, "run", str(f), "--dataset", "together", *sets,
                               "--set", f"lakehouse.root={root}", "--set", f"lakehouse.catalog_dir={tmp_path / f'cat{k}'}"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, f in enumerate(folders)]
    try:
        outs = [p.communicate(timeout=900)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    retries = sum(out.count("a concurrent commit landed first") for out in outs)
    print(f"commit races lost and retried: {retries}")

    raw = spark.read.format("delta").load(f"{root}/together/raw_images")
    assert raw.count() == 120 and raw.select("source_uri").distinct().count() == 120
    images = spark.read.format("delta").load(f"{root}/together/images")
    assert images.count() == 120 and images.select("image_id").distinct().count() == 120
    runs = spark.read.format("delta").load(f"{root}/together/runs")
    assert runs.filter("status = 'succeeded'").count() == 8  # 4 stages x 2 processes
