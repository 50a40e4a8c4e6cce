"""The benchmark harness runs end to end on a tiny input, so that it cannot rot."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_harness_on_a_tiny_folder(tmp_path):
    for label in ("a", "b"):
        d = tmp_path / "in" / label
        d.mkdir(parents=True)
        for i in range(10):
            (d / f"{i}.png").write_bytes(encode(photo(i + (100 if label == "b" else 0), 32, 32)))
    md = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", str(tmp_path / "in"), "--label", "tiny", "--markdown", str(md),
         "--set", "spark.driver_memory=1g"],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text()
    assert "### tiny: 20 images (20 decoded by the baseline, 20 in images)" in text
    assert "ptdm process |" in text and "ratio pipeline/baseline" in text
    startup = float(text.split("Spark start-up (to the first stage) | ")[1].split(" |")[0])
    assert 1 < startup < float(text.split("| ptdm run (local[2], start-up included) | ")[1].split(" |")[0])
    jobs = int(text.split("Spark jobs: ")[1].split(",")[0])
    assert jobs > 10  # the event log was read: every stage runs several jobs
    assert "[process] decoded, scored, normalized and wrote images" in text  # the stage profile
    jvm = float(text.split("JVM ")[1].split(" MB")[0])
    assert jvm > 100  # the sampler really found the driver JVM


def test_overheads_prints_every_building_block():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.overheads", "--repeat", "1"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "building block" not in line]
    assert len(rows) == 9
    merge = next(r for r in rows if r.startswith("| Delta MERGE"))
    assert float(merge.split("|")[2]) > 0.05  # a MERGE really ran (several Spark jobs)
