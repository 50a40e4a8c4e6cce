"""The plumbing every job shares, whatever function it serves (the stages, analyze, release,
labels, augment, erase ...): ``job`` records its ``runs`` row and stamps its Delta commits with the
run id; ``Clock`` prints a timed line per step; ``read_table`` / ``write_table`` / ``stage_frame``
are the Delta reads, the one MERGE writer and the per-run staging folder."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ptdm_spark import progress
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta, sources
from ptdm_spark.runs import Run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Clock:
    """A line per step of a stage with the time it took (the stage's own profile), and images/s
    where the step announced its images (``expect``); while a step runs, the job's progress
    reporter (``spark.progress: ptdm``) shows how far it is."""

    def __init__(self, stage: str):
        self.stage, self.last, self.images = stage, time.monotonic(), None

    def expect(self, images: int, tasks: int | None = None) -> None:
        """The next step handles ``images`` images (in ``tasks`` tasks of its per-image Spark stage)."""
        self.images = images
        progress.expect(images, tasks)

    def lap(self, what: str) -> None:
        now = time.monotonic()
        took = now - self.last
        rate = f", {self.images / took:,.0f} images/s" if self.images and took > 0 else ""
        progress.lap()
        log(f"[{self.stage}] {what} ({took:.1f}s{rate})")
        self.last, self.images = now, None


# --- plumbing shared by the stages ---------------------------------------------------------------


@contextmanager
def job(spark: "SparkSession", cfg: Config, name: str, dataset: str, argv: list[str]) -> Iterator[Run]:
    """A job run: commits stamped with its id; its ``runs`` row written however it ends."""
    run = Run(job=name, dataset=dataset, config=cfg, args=argv)
    start = time.monotonic()
    log(f"[{name}] run {run.run_id}")
    status = "failed"
    run.begin(spark)
    try:
        with delta.commit_metadata(spark, run.commit_meta), progress.reporting(spark, name, cfg.spark.progress == "ptdm"):
            yield run
        status = "succeeded"
    except UsageError:
        status = "usage_error"
        raise
    finally:
        run.counts["seconds"] = int(round(time.monotonic() - start))
        try:
            run.record(spark, status)
        finally:
            _drop_staging(spark, run)
        log(f"[{name}] {status} in {time.monotonic() - start:.1f}s")


def _staging(run: Run, name: str) -> str:
    return f"{run.table_path('_staging')}/{run.run_id}/{name}"


def _drop_staging(spark: "SparkSession", run: Run) -> None:
    fs, path = sources.hadoop_fs(spark, f"{run.table_path('_staging')}/{run.run_id}")
    if fs.exists(path):
        fs.delete(path, True)


def stage_frame(spark: "SparkSession", df: "DataFrame", run: Run, name: str) -> "DataFrame":
    """Write ``df`` once to a staging Parquet folder and read it back: the expensive columns are
    computed once, and every later read sees the same rows."""
    path = _staging(run, name)
    # Encoded image bytes do not compress: compressing them only costs CPU, twice.
    df.write.mode("overwrite").option("compression", "none").parquet(path)
    return spark.read.parquet(path)


def write_table(spark: "SparkSession", run: Run, table: str, df: "DataFrame", keys: tuple[str, ...],
           **kw: Any) -> dict[str, int]:
    """Merge ``df`` into ``table``, register it, note its version; returns the commit's metrics
    (rows inserted, source rows...; empty when nothing changed), read from the Delta log rather
    than by counting the data again."""
    return _written(spark, run, table, lambda path: delta.merge_into(spark, df, path, keys, **kw))


def replace_table(spark: "SparkSession", run: Run, table: str, df: "DataFrame") -> None:
    """Make ``table`` exactly ``df`` in one commit (see :func:`ptdm_spark.io.delta.overwrite`), for
    small derived tables recomputed whole; register it, note its version."""
    _written(spark, run, table, lambda path: delta.overwrite(spark, df, path))


def replace_slice(spark: "SparkSession", run: Run, table: str, df: "DataFrame", condition: str) -> None:
    """Replace the rows of ``table`` matching ``condition`` with ``df`` in one commit (see
    :func:`ptdm_spark.io.delta.replace_slice`), register the table, note its version."""
    _written(spark, run, table, lambda path: delta.replace_slice(spark, df, path, condition))


def replace_rows(spark: "SparkSession", run: Run, table: str, rows: list[dict[str, Any]], schema,
                 condition: str) -> None:
    """:func:`replace_slice` for rows already on the driver (dicts with ``schema``'s columns): a
    local, unencrypted lakehouse writes them with deltalake in this process (no Spark job; a cold
    JVM's first Delta write costs seconds), anything else, or a table deltalake refuses, with
    Spark. One commit either way, stamped with the run."""
    def write(path: str) -> None:
        if run.native_path(path) is not None and delta.write_rows_natively(
                path, rows, schema, run.commit_meta, condition):
            return
        delta.replace_slice(spark, spark.createDataFrame(rows, schema), path, condition)

    _written(spark, run, table, write)


def _written(spark: "SparkSession", run: Run, table: str, write) -> dict[str, int]:
    """``write(path)`` of ``table``, then what every table write of a job does after it: register
    the table, note the version this run's commit made; returns that commit's metrics."""
    path = run.table_path(table)
    write(path)
    delta.register(spark, run.dataset, table, path)
    version, metrics = delta.commit_of(spark, path, run.run_id)
    run.output_versions[table] = version
    return metrics


def read_table(spark: "SparkSession", run: Run, table: str, schema=None, *, files_of_version: bool = False,
               version: int | None = None) -> "DataFrame":
    """The table ``table`` of the run's dataset, now or at ``version`` (Delta time travel), that
    version noted as the run's input; ``schema``: an empty frame of it when there is no table yet
    (else a one-line error). ``files_of_version``: for a command that only reads the table, on a
    local, unencrypted lakehouse, the Parquet files of that version read directly
    (:func:`delta.read_natively`: no Delta state reconstruction in Spark); Delta's reader where
    those files alone do not say what the table holds."""
    path = run.table_path(table)
    if files_of_version and run.native_path(path) is not None:
        at = delta.table_version(spark, path) if version is None else version
        df = None if at is None else delta.read_natively(spark, path, at)
        if df is not None:
            run.input_versions[table] = at
            return df
    if not delta.is_delta_table(spark, path):
        if schema is None:
            raise UsageError(f"unknown dataset {run.dataset!r}: no {table} table at {path} "
                             f"(run: ptdm ingest SOURCE --dataset {run.dataset})")
        return spark.createDataFrame([], schema)
    if version is not None:
        run.input_versions[table] = version
        return spark.read.format("delta").option("versionAsOf", version).load(path)
    run.note_input(spark, table)
    return spark.read.format("delta").load(path)


def size_arrow_batches(spark: "SparkSession", max_records: int, batch_bytes: int, n: int, total_bytes: int) -> None:
    """Arrow batches to the Python workers bounded by bytes: rows per batch = ``batch_bytes`` /
    the average object size of the ``n`` objects (``total_bytes``), at most ``max_records``."""
    avg = max(1, total_bytes // max(1, n))
    rows = max(1, min(max_records, batch_bytes // avg))
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(rows))
    spark.conf.set("spark.sql.execution.arrow.maxBytesPerBatch", str(batch_bytes))


def by(df: "DataFrame", col: str) -> dict[str, int]:
    return {str(r[0]): int(r[1]) for r in df.groupBy(col).count().collect()}


def check_writable(spark: "SparkSession", uri: str) -> None:
    """Create and delete a probe file under the dataset: a read-only or broken lakehouse stops
    the command with one line before any table is touched."""
    import uuid

    try:
        fs, probe = sources.hadoop_fs(spark, f"{uri}/_probe-{uuid.uuid4().hex}")
        fs.create(probe, True).close()
        fs.delete(probe, False)
    except Exception as exc:  # py4j carries the JVM's IOException (permission, not a folder, ...)
        first = str(exc).strip().splitlines()
        detail = next((ln for ln in first if "Exception" in ln), first[0] if first else type(exc).__name__)
        raise UsageError(f"the lakehouse is not writable at {uri}: {detail.strip()[:200]}") from None


