"""ptdm's progress lines come from the real Spark status tracker while a job runs."""

from __future__ import annotations

import io
import re
import time

import pytest

from ptdm_spark.progress import Reporter

pytestmark = pytest.mark.spark


def test_reporter_turns_finished_tasks_into_images(spark):
    def slow(batches):
        for b in batches:
            time.sleep(1.5)  # each task takes a while, so the reporter sees the stage between tasks
            yield b

    out = io.StringIO()
    reporter = Reporter(spark, "process", every=0.0, poll=0.3, out=out).start()
    reporter.expect(images=400, tasks=4)
    try:
        spark.range(400, numPartitions=4).mapInPandas(slow, "id long").write.format("noop").mode("overwrite").save()
        time.sleep(1.0)  # one more poll sees the stage finished
    finally:
        reporter.stop()
    assert reporter._step.python, "the mapInPandas stage was not recognised (Spark's operator graph)"
    lines = out.getvalue().splitlines()
    assert lines, "no progress line"
    done = [int(m.group(1).replace(",", "")) for m in map(re.compile(r"\[process\] ([\d,]+)/400 images").match, lines) if m]
    assert len(done) == len(lines), lines  # every line is a progress line of this step
    assert done == sorted(done) and done[-1] == 400, lines
    assert set(done) <= {0, 100, 200, 300, 400}  # whole tasks of 100 images
    assert "images/s" in lines[-1] and "ETA 0s" in lines[-1] and "4/4 tasks done" in lines[-1]
