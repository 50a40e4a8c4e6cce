"""Faults the local pipeline survives: the driver killed in the middle of a job."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import PTDM, ROOT, overrides_for
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_driver_killed_mid_process_then_rerun_completes_exactly_once(spark, tmp_path):
    src = tmp_path / "src" / "a"
    src.mkdir(parents=True)
    for i in range(300):
        (src / f"{i}.png").write_bytes(encode(photo(900 + i, 384, 512)))
    lh = tmp_path / "lh"
    args = [*PTDM, "run", str(tmp_path / "src"), "--dataset", "killed",
            *[a for o in overrides_for(lh) for a in ("--set", o)]]
    pause = tmp_path / "pause"
    pause.mkdir()
    env = {**os.environ, "PTDM_PAUSE_AT": "process.task", "PTDM_PAUSE_DIR": str(pause)}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + 600
    while not (pause / "process.task.reached").exists():  # a process task is running, mid-job
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, its JVM and its workers, no goodbye
    proc.wait(timeout=60)

    def table(name):
        return spark.read.format("delta").load(f"{lh.as_uri()}/killed/{name}")

    # the tables are readable at their last good version: ingest finished, process did not commit
    assert table("raw_images").count() == 300
    from ptdm_spark.io import delta

    assert delta.table_version(spark, f"{lh.as_uri()}/killed/images") is None
    # the killed run left its row: started, never finished
    assert {(r.job, r.status, r.finished_at is None) for r in table("runs").collect()} == {
        ("ingest", "succeeded", False), ("process", "running", True)}

    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "accounting adds up" in rerun.stdout
    statuses = sorted((r.job, r.status) for r in table("runs").collect())
    assert ("process", "abandoned") in statuses and ("process", "succeeded") in statuses
    assert ("process", "running") not in statuses
    assert table("raw_images").count() == 300  # the rerun's ingest added nothing
    images = table("images")
    assert images.count() == 300 and images.select("image_id").distinct().count() == 300
    # near-duplicate photos among the 300 are duplicates, not curated: together they are all there
    assert table("curated").count() + table("duplicates").count() == 300
