"""Progress of a stage's long steps: a readable line with images done, images/s and an estimate.

Spark's console bars (``[Stage 7:==>   (2 + 2) / 8]``) interleave with ptdm's own lines and say
nothing about images. With ``spark.progress: ptdm`` (the default) each job runs a
:class:`Reporter` instead: a daemon thread polls the SparkContext's status tracker once a second
and writes one line to stderr at a bounded rate, for example::

    [process] 35,000/70,000 images (50%), 1,180 images/s, ETA 30s  (Spark stage 12: 2/4 tasks done, 2 running)

On a terminal the line is rewritten in place (one line per step); in a log a new line is written
every ``every`` seconds. Where a stage knows how many images a step handles and in how many tasks
(``expect``), finished tasks are turned into images; otherwise the line counts tasks.
``spark.progress: spark`` brings Spark's bars back, ``off`` shows neither.

Driver-side only: it needs a live SparkSession, so code that must not need a JVM (imaging/, the
loader) never imports it.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


_PYTHON_OPERATORS = re.compile(r"InPandas|InArrow|EvalPython")


@dataclass
class _Step:
    started: float
    images: int | None = None  # images this step handles, when the stage knows
    tasks: int | None = None  # ... in this many Spark tasks (the per-image stage's partitions)
    stages: dict[int, Any] = field(default_factory=dict)  # Spark stage id -> its last SparkStageInfo
    python: set[int] = field(default_factory=set)  # ids of the stages that run Python (pandas UDFs)


def duration(seconds: float) -> str:
    """42s, 3m05s, 1h02m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def describe(stage: str, step: _Step, now: float) -> str | None:
    """The progress line for ``step`` as Spark reports it (None while no Spark stage has started).

    Images done are the per-image Spark stage's finished tasks times images per task: the stage
    with the task count the step announced that runs Python (a Delta MERGE runs other stages of the
    same width before and after it); tasks of a repartitioned stage hold equal shares."""
    if not step.stages:
        return None
    elapsed = now - step.started
    latest = step.stages[max(step.stages)]
    spark_part = (f"Spark stage {latest.stageId}: {latest.numCompletedTasks}/{latest.numTasks} tasks done, "
                  f"{latest.numActiveTasks} running")
    if not step.images:
        return f"[{stage}] {duration(elapsed)}  ({spark_part})"
    if step.tasks:  # before the per-image stage starts, no image is done
        same = {sid: s for sid, s in step.stages.items() if s.numTasks == step.tasks}
        python = [s for sid, s in same.items() if sid in step.python]
        # Without Python stages recognised (an unexpected plan): the latest stage of that width.
        per_image = (python or [same[max(same)]]) if same else []
        done_tasks = max((s.numCompletedTasks for s in per_image), default=0)
        done = min(step.images, round(step.images * done_tasks / step.tasks))
    else:  # no announced task count: the share of all tasks seen so far
        total = sum(s.numTasks for s in step.stages.values()) or 1
        done = round(step.images * sum(s.numCompletedTasks for s in step.stages.values()) / total)
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = duration((step.images - done) / rate) if rate > 0 else "unknown"
    return (f"[{stage}] {done:,}/{step.images:,} images ({100 * done // step.images}%), {rate:,.0f} images/s, "
            f"ETA {eta}  ({spark_part})")


class Reporter:
    """Polls ``spark``'s status tracker in a daemon thread and prints the current step's line."""

    def __init__(self, spark: "SparkSession", stage: str, *, every: float = 10.0, poll: float = 1.0,
                 out: IO[str] | None = None):
        self.stage, self.every, self.poll = stage, every, poll
        self.out = out or sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        sc = spark.sparkContext
        self._tracker = sc.statusTracker()
        self._store = sc._jsc.sc().statusStore()
        self._graphs = sc._jvm.org.apache.spark.ui.scope.RDDOperationGraph
        self._lock = threading.Lock()
        self._step = _Step(time.monotonic())
        self._stop = threading.Event()
        self._printed, self._last_line, self._on_screen = 0.0, "", False
        self._thread = threading.Thread(target=self._run, name=f"ptdm-progress-{stage}", daemon=True)

    def start(self) -> "Reporter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._clear()

    def expect(self, images: int, tasks: int | None = None) -> None:
        """The step starting now handles ``images`` images in ``tasks`` tasks of one Spark stage (the
        Spark stages seen before belong to the work before it: counted afresh from here)."""
        with self._lock:
            self._step = _Step(time.monotonic(), images, tasks)

    def lap(self) -> None:
        """The current step ended (its own line follows): start the next one."""
        with self._lock:
            self._step = _Step(time.monotonic())
            self._clear()

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self._observe()
            except Exception:  # the JVM went away (shutdown, a failed job): progress is only a display
                return
            now = time.monotonic()
            with self._lock:
                if now - self._step.started < self.every or now - self._printed < (1.0 if self.tty else self.every):
                    continue
                line = describe(self.stage, self._step, now)
                if line and line != self._last_line:
                    self._write(line)
                    self._printed, self._last_line = now, line

    def _observe(self) -> None:
        active = set(self._tracker.getActiveStageIds())
        with self._lock:
            known = set(self._step.stages)
        infos = {sid: self._tracker.getStageInfo(sid) for sid in active | known}
        python = {sid for sid in active - known if self._runs_python(sid)}
        with self._lock:
            for sid, info in infos.items():
                if info is not None and (sid in active or sid in self._step.stages):
                    self._step.stages[sid] = info
            self._step.python |= python

    def _runs_python(self, stage_id: int) -> bool:
        """Whether the stage's operators include a pandas/Arrow UDF, from the operator graph Spark
        keeps for its UI (kept with the UI off too). False where that internal API is missing."""
        try:
            graph = self._store.operationGraphForStage(stage_id)
            return bool(_PYTHON_OPERATORS.search(self._graphs.makeDotFile(graph)))
        except Exception:  # a Spark without this (internal) API: fall back to the task count alone
            return False

    def _write(self, line: str) -> None:
        if self.tty:
            self.out.write("\r\033[K" + line)
            self._on_screen = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _clear(self) -> None:
        if self._on_screen:
            self.out.write("\r\033[K")
            self.out.flush()
            self._on_screen = False
        self._last_line = ""


_current: Reporter | None = None


@contextmanager
def reporting(spark: "SparkSession", stage: str, enabled: bool) -> Iterator[Reporter | None]:
    """Run a :class:`Reporter` for ``stage`` while the block runs (nothing when not ``enabled``)."""
    global _current
    if not enabled:
        yield None
        return
    reporter = Reporter(spark, stage).start()
    previous, _current = _current, reporter
    try:
        yield reporter
    finally:
        _current = previous
        reporter.stop()


def expect(images: int, tasks: int | None = None) -> None:
    """Tell the running reporter (if any) the size of the current step."""
    if _current is not None:
        _current.expect(images, tasks)


def lap() -> None:
    if _current is not None:
        _current.lap()
