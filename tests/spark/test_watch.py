"""``ptdm watch``: a landing folder ingested by Spark Structured Streaming, exactly once.

The truth is the test's own listing of the files it copied in."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import PTDM, ROOT, overrides_for
from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark


def sets(*items):
    return [a for i in items for a in ("--set", i)]


def run_ptdm(overrides, *args) -> tuple[int, str]:
    from ptdm_spark.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main([args[0], *sets(*overrides), *args[1:]])
    return status, out.getvalue()


def drop(folder: Path, names: list[str], seed: int) -> set[str]:
    """Write images under ``folder`` the way a copy lands (a temp name, then a rename); returns
    their file: URIs."""
    out = set()
    for i, name in enumerate(names):
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.parent / f".{p.name}.part"
        tmp.write_bytes(encode(photo(seed + i, 40, 48)))
        os.replace(tmp, p)
        out.add(f"file:{p}")
    return out


def raw(spark, lakehouse: Path, dataset: str):
    return spark.read.format("delta").load(f"{lakehouse.as_uri()}/{dataset}/raw_images")


def test_once_takes_every_file_any_name_and_a_rerun_adds_nothing(spark, overrides, lakehouse, tmp_path):
    land = tmp_path / "landing"
    want = drop(land, ["cats/a b#1.png", "cats/_DSC0001.PNG", "dogs/IMG_2.png", "dogs/.hidden.png", "top.png"], 10)
    (land / "dogs" / "empty.png").write_bytes(b"")
    status, out = run_ptdm(overrides, "watch", str(land), "--dataset", "wonce", "--once",
                           "--then", "process,dedupe,curate")
    assert status == 0, out
    rows = raw(spark, lakehouse, "wonce").collect()
    assert {r.source_uri for r in rows} == want
    assert {r.source_uri.rsplit("/", 1)[1]: r.label for r in rows}["_DSC0001.PNG"] == "cats"
    rej = spark.read.format("delta").load(f"{lakehouse.as_uri()}/wonce/rejects").collect()
    assert {(r.source_uri, r.reason) for r in rej} == {(f"file:{land}/dogs/empty.png", "empty")}
    curated = spark.read.format("delta").load(f"{lakehouse.as_uri()}/wonce/curated").count()
    assert curated == len(want)  # --then ran process, dedupe, curate
    status, out = run_ptdm(overrides, "watch", str(land), "--dataset", "wonce", "--once")
    assert status == 0, out
    assert raw(spark, lakehouse, "wonce").count() == len(want)
    more = drop(land, ["birds/_DSC0002.PNG", "birds/x.png"], 50)
    status, out = run_ptdm(overrides, "watch", str(land), "--dataset", "wonce", "--once")
    assert status == 0, out
    assert {r.source_uri for r in raw(spark, lakehouse, "wonce").collect()} == want | more


def test_files_copied_in_while_it_runs_are_each_ingested_once(spark, overrides, lakehouse, tmp_path):
    land = tmp_path / "landing"
    land.mkdir()
    result = {}
    t = threading.Thread(target=lambda: result.update(
        r=run_ptdm(overrides, "watch", str(land), "--dataset", "wlive", "--set", "watch.poll_seconds=1")))
    t.start()
    want = set()
    try:
        for wave in range(3):
            want |= drop(land, [f"w{wave}/{i}.png" for i in range(4)] + [f"w{wave}/_c{wave}.png"], 100 + 10 * wave)
            time.sleep(2)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if {r.source_uri for r in raw(spark, lakehouse, "wlive").select("source_uri").collect()} == want:
                    break
            except Exception:  # noqa: BLE001 (not created yet)
                pass
            time.sleep(1)
    finally:
        for q in spark.streams.active:
            if q.name == "ptdm-watch-wlive":
                q.stop()
        t.join(120)
    assert result["r"][0] == 0, result["r"][1]
    rows = raw(spark, lakehouse, "wlive").collect()
    assert len(rows) == len(want) and {r.source_uri for r in rows} == want


@pytest.mark.slow
def test_killed_in_the_middle_of_a_batch_then_restarted_every_file_once(spark, overrides, tmp_path):
    land = tmp_path / "landing"
    want = drop(land, [f"a/{i}.png" for i in range(6)] + ["a/_DSC0003.PNG"], 300)
    lh = tmp_path / "lh"
    pause = tmp_path / "pause"
    pause.mkdir()
    args = [*PTDM, "watch", str(land), "--dataset", "wkill", *sets(*overrides_for(lh), "watch.poll_seconds=1")]
    env = {**os.environ, "PTDM_PAUSE_AT": "watch.batch", "PTDM_PAUSE_DIR": str(pause)}
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    deadline = time.monotonic() + 300
    while not (pause / "watch.batch.reached").exists():  # raw_images committed; the batch not marked done
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    want |= drop(land, ["b/1.png", "b/2.png"], 400)  # arrives while the batch is in flight
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert {r.source_uri for r in raw(spark, lh, "wkill").collect()} == want - {f"file:{land}/b/1.png",
                                                                                f"file:{land}/b/2.png"}
    status, out = run_ptdm([*overrides, f"lakehouse.root={lh}"], "watch", str(land), "--dataset", "wkill", "--once")
    assert status == 0, out
    rows = raw(spark, lh, "wkill").collect()
    assert len(rows) == len(want) and {r.source_uri for r in rows} == want
