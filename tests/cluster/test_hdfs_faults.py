"""HDFS faults: a DataNode stopped while a job runs."""

from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from tests.conftest import PTDM, ROOT, overrides_for
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.hdfs, pytest.mark.spark, pytest.mark.slow]


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
