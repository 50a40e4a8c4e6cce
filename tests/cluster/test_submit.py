"""spark-submit on a real standalone cluster over a real HDFS, and a worker killed mid-job."""

from __future__ import annotations

import re
import subprocess
import time
import uuid

import pytest

from tests.conftest import ROOT
from tests.imagefiles import encode, photo
from tests.spark.test_pipeline import make_mixed

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.slow]


def submit(master: str, source: str, dataset: str, root: str, catalog, stderr=subprocess.PIPE,
           spark_args: tuple[str, ...] = ()):
    cmd = [str(ROOT / "scripts" / "submit.sh"), "run", "--master", master, *spark_args, "--", source, "--dataset", dataset,
           "--profile", "cluster", "--set", f"lakehouse.root={root}", "--set", f"lakehouse.catalog_dir={catalog}",
           "--set", "spark.progress=false"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)


def accounting(stdout: str) -> dict[str, int]:
    keys = {"source objects": "objects", "in raw_images": "raw", "in images": "images",
            "rejected at process": "process_rejects", "duplicates": "duplicates", "curated": "curated"}
    out = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s+([a-z_ ]+?)\s+(\d+)", line)
        if m and m.group(1) in keys:
            out[keys[m.group(1)]] = int(m.group(2))
    return out


def upload(ptdm, local, hdfs) -> str:
    landing = f"{hdfs}/landing/{uuid.uuid4().hex[:8]}"
    status, out = ptdm("upload", str(local), landing)
    assert status == 0, out
    return landing


def test_spark_submit_on_standalone_over_hdfs_matches_local(hdfs, spark_cluster, ptdm, tmp_path):
    local = tmp_path / "mixed"
    make_mixed(local)
    landing = upload(ptdm, local, hdfs)
    proc = submit(spark_cluster, landing, "submitted", f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}", tmp_path / "catalog")
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    assert "accounting adds up" in out
    # the same numbers as the local run of the same folder (tests/spark/test_pipeline.py)
    assert accounting(out) == {"objects": 14, "raw": 14, "images": 6, "process_rejects": 7,
                               "duplicates": 1, "curated": 4}  # notes.txt is read, then not_image


def test_worker_killed_during_process_stage(hdfs, spark_cluster, ptdm, tmp_path):
    """Kill one worker (SIGKILL) while process's tasks run: the job finishes on the other
    worker, the accounting adds up, and no image is written twice."""
    src = tmp_path / "many" / "x"
    src.mkdir(parents=True)
    for i in range(240):
        (src / f"{i}.png").write_bytes(encode(photo(500 + i, 384, 512)))
    landing = upload(ptdm, tmp_path / "many", hdfs)
    root = f"{hdfs}/ptdm/{uuid.uuid4().hex[:8]}"
    # spark-submit's Python driver writes its stderr into stdout: one stream to watch.
    pause = tmp_path / "pause"
    pause.mkdir()
    # Process tasks stop at their start until told to go (ptdm_spark.hooks): the worker is killed
    # while they run, at a defined point, whatever the machine's speed.
    pause_conf = ("--conf", "spark.executorEnv.PTDM_PAUSE_AT=process.task",
                  "--conf", f"spark.executorEnv.PTDM_PAUSE_DIR={pause}")
    proc = submit(spark_cluster, landing, "faults", root, tmp_path / "catalog2", stderr=subprocess.STDOUT,
                  spark_args=pause_conf)
    import threading

    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 900
    while not (pause / "process.task.reached").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
        time.sleep(0.2)
    subprocess.run([str(ROOT / "scripts" / "spark-cluster.sh"), "kill-worker", "1"], check=True)
    killed = True
    (pause / "process.task.go").touch()
    proc.wait(timeout=900)
    reader.join(timeout=60)
    out = "".join(lines)
    assert killed and proc.returncode == 0, out[-3000:]
    status = subprocess.run([str(ROOT / "scripts" / "spark-cluster.sh"), "status"], capture_output=True, text=True)
    assert "1 alive workers" in status.stdout  # the kill really took a worker away mid-job
    acc = accounting(out)
    # near-duplicate photos among the 240 are duplicates, not curated: together they are all there
    assert acc["images"] == 240 and acc["curated"] + acc["duplicates"] == 240 and "accounting adds up" in out
    status, q = ptdm("sql", f"SELECT count(*) AS n, count(DISTINCT image_id) AS d FROM delta.`{root}/faults/images`",
                     "--format", "csv")
    assert q.splitlines()[-1] == "240,240", q
