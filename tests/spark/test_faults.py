"""Faults the local pipeline survives: the driver killed in the middle of a job."""

from __future__ import annotations

import os
import re
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
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    killed = False
    for line in proc.stdout:
        if re.search(r"^\[process\] \d+ new image", line):
            time.sleep(1.5)
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, no goodbye
            killed = True
            break
    proc.wait(timeout=60)
    assert killed

    def table(name):
        return spark.read.format("delta").load(f"{lh.as_uri()}/killed/{name}")

    # the tables are readable at their last good version: ingest finished, process did not commit
    assert table("raw_images").count() == 300
    from ptdm_spark.io import delta

    assert delta.table_version(spark, f"{lh.as_uri()}/killed/images") is None
    assert {(r.job, r.status) for r in table("runs").collect()} == {("ingest", "succeeded")}

    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "accounting adds up" in rerun.stdout
    assert table("raw_images").count() == 300  # the rerun's ingest added nothing
    images = table("images")
    assert images.count() == 300 and images.select("image_id").distinct().count() == 300
    # near-duplicate photos among the 300 are duplicates, not curated: together they are all there
    assert table("curated").count() + table("duplicates").count() == 300
