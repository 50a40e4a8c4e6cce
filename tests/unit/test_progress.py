"""The progress line: images from finished tasks, images/s and an estimate (no JVM)."""

from __future__ import annotations

import pytest
from pyspark.status import SparkStageInfo

from ptdm_spark.progress import _Step, describe, duration

pytestmark = pytest.mark.unit


def stage(sid: int, tasks: int, done: int, running: int = 0) -> SparkStageInfo:
    return SparkStageInfo(sid, 0, f"stage {sid}", tasks, running, done, 0)


def test_finished_tasks_of_the_per_image_stage_become_images():
    step = _Step(started=100.0, images=70_000, tasks=4)
    step.stages = {3: stage(3, 2, 2), 4: stage(4, 4, 2, running=2)}  # a scan, then the per-image stage
    assert describe("process", step, now=150.0) == (
        "[process] 35,000/70,000 images (50%), 700 images/s, ETA 50s  (Spark stage 4: 2/4 tasks done, 2 running)")


def test_the_stage_that_runs_python_counts_not_the_merge_stages_of_the_same_width():
    step = _Step(started=0.0, images=70_000, tasks=4)
    step.stages = {4: stage(4, 4, 4), 5: stage(5, 4, 4), 6: stage(6, 4, 0, running=2)}  # scan, UDF, MERGE write
    step.python = {5}
    assert describe("process", step, now=100.0).startswith("[process] 70,000/70,000 images (100%), 700 images/s, ETA 0s")
    step.stages[5] = stage(5, 4, 1, running=2)
    del step.stages[6]
    assert describe("process", step, now=100.0).startswith("[process] 17,500/70,000 images (25%)")


def test_before_the_per_image_stage_starts_nothing_is_done():
    step = _Step(started=0.0, images=1000, tasks=8)
    step.stages = {1: stage(1, 2, 1, running=1)}
    assert describe("process", step, now=12.0) == (
        "[process] 0/1,000 images (0%), 0 images/s, ETA unknown  (Spark stage 1: 1/2 tasks done, 1 running)")


def test_without_a_size_the_line_counts_tasks():
    step = _Step(started=0.0)
    assert describe("ingest", step, now=5.0) is None  # no Spark stage yet: nothing to say
    step.stages = {7: stage(7, 8, 3, running=2)}
    assert describe("ingest", step, now=125.0) == "[ingest] 2m05s  (Spark stage 7: 3/8 tasks done, 2 running)"


def test_durations():
    assert [duration(s) for s in (4.4, 59.6, 185, 3725)] == ["4s", "1m00s", "3m05s", "1h02m"]
