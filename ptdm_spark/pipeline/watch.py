"""``ptdm watch``: continuous ingest of a landing folder with Spark Structured Streaming.

Spark's file stream (``binaryFile``, recursive, local or hdfs://) finds the files that arrive and
reads their bytes; its checkpoint lives in the dataset (``<dataset>/_checkpoints/watch-<hash of
the folder>``), so a restarted watch goes on where it stopped. Each micro-batch is written into
``raw_images`` by the same keyed MERGE as ``ingest``: a batch replayed after a crash adds nothing.
Spark's file index never returns names that start with ``_`` or ``.`` (a camera's
``_DSC0001.JPG``) nor empty files; each batch also lists the folder on the driver and reads those names the way
``ingest`` does, so that no file is left out. Empty and oversized files become rejects.

With ``--then process,dedupe,curate`` the later stages run (each as its own job) after every
``watch.every`` batches that brought something new; ``--once`` processes what is there and stops
(trigger ``availableNow``).
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Any

from ptdm_spark import hooks, schemas
from ptdm_spark.config import Config
from ptdm_spark.io import delta, sources
from ptdm_spark.pipeline.job import Clock, job, log, write_table
from ptdm_spark.runs import Run
from ptdm_spark.transforms import ingest as t_ingest

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def checkpoint(cfg: Config, dataset: str, source: str) -> str:
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return f"{cfg.lakehouse.table_path(dataset, '_checkpoints')}/watch-{digest}"


def watch(spark: "SparkSession", cfg: Config, run: Run, source: sources.Source, labels: str, once: bool,
          then: list[str], argv: list[str]) -> dict[str, Any]:
    from pyspark.sql import functions as F

    from ptdm_spark import stages

    wc, ic = cfg.watch, cfg.ingest
    dirname = labels == "dirname"
    root = source.uri.rstrip("/")
    binary = "path string, modificationTime timestamp, length long, content binary"  # binaryFile's schema
    stream = (spark.readStream.format("binaryFile").schema(binary).option("recursiveFileLookup", "true")
              .option("maxFilesPerTrigger", wc.max_files_per_batch).load(root))
    state = {"batches": 0, "files": 0, "inserted": 0, "rejected": 0, "since_then": 0}

    def batch(df: "DataFrame", batch_id: int) -> None:
        clock = Clock("watch")
        rel = F.expr(f"substring(path, {len(root) + 2})")
        objects = df.select(
            F.col("path").alias("source_uri"), F.lit("file").alias("source_format"), "content",
            F.col("length").alias("size_bytes"),
            (F.element_at(F.split("path", "/"), -2) if dirname else F.lit(None).cast("string")).alias("label"),
            rel.alias("rel_path"), F.col("modificationTime").alias("source_modified_at"))
        objects = objects.unionByName(_unseen_by_spark(spark, run, root, ic, dirname).select(*objects.columns))
        objects = objects.withColumn("error_reason", F.when(F.col("size_bytes") == 0, "empty")
                                     .when(F.col("size_bytes") > ic.max_bytes, "too_large"))
        objects = objects.withColumn("error_detail", F.when(F.col("error_reason") == "too_large",
                                                            F.format_string(f"%d bytes exceeds ingest.max_bytes={ic.max_bytes}",
                                                                            "size_bytes")))
        objects = objects.withColumn("content", F.when(F.col("error_reason").isNull(), F.col("content")))
        objects = objects.localCheckpoint()  # one read of the batch's files for both writes
        n = objects.count()
        if not n:
            return
        metrics = write_table(spark, run, "raw_images", t_ingest.raw_images(objects, run.run_id),
                              ("source_uri", "image_id"))
        hooks.pause_point("watch.batch")  # fault tests: raw_images committed, the batch not yet marked done
        bad = t_ingest.rejects(objects.withColumn("content", F.lit(None).cast("binary")), run.run_id)
        rejected = bad.count()
        if rejected:
            write_table(spark, run, "rejects", bad, ("source_uri", "stage", "reason"))
        inserted = delta.rows_inserted(metrics)
        state["batches"] += 1
        state["files"] += n
        state["inserted"] += inserted
        state["rejected"] += rejected
        if inserted:
            state["since_then"] += 1
        clock.lap(f"batch {batch_id}: {n:,} new file(s), {inserted:,} row(s) into raw_images, {rejected:,} rejected")
        if then and state["since_then"] >= wc.every:
            state["since_then"] = 0
            _run_then(spark, cfg, run.dataset, then, argv, stages)

    query = (stream.writeStream.foreachBatch(batch)
             .option("checkpointLocation", checkpoint(cfg, run.dataset, root))
             .queryName(f"ptdm-watch-{run.dataset}"))
    query = query.trigger(availableNow=True) if once else query.trigger(processingTime=f"{wc.poll_seconds} seconds")
    log(f"[watch] watching {root} for dataset {run.dataset}" + (" (once)" if once else " (Ctrl-C stops)"))
    empty = spark.createDataFrame([], stream.schema)
    q = query.start()
    last_sweep = time.monotonic()
    try:
        while q.isActive:
            q.awaitTermination(1)
            # Files with hidden names alone start no stream batch: sweep for them between batches.
            if not once and time.monotonic() - last_sweep > wc.poll_seconds and not q.status["isTriggerActive"]:
                batch(empty, "sweep")
                last_sweep = time.monotonic()
    except KeyboardInterrupt:
        log("[watch] stopping (the current batch finishes or is replayed at the next start)")
        q.stop()
    if q.exception() is not None:
        raise q.exception()
    if once:
        batch(empty, "sweep")
    if once and then and state["since_then"]:
        _run_then(spark, cfg, run.dataset, then, argv, stages)
    run.counts.update(batches=state["batches"], files=state["files"], inserted=state["inserted"],
                      rejected=state["rejected"])
    print(f"watch: {state['batches']} batch(es): {state['files']:,} file(s), {state['inserted']:,} new in raw_images, "
          f"{state['rejected']:,} rejected")
    return run.counts


def _run_then(spark: "SparkSession", cfg: Config, dataset: str, then: list[str], argv: list[str], stages) -> None:
    for step in then:
        with job(spark, cfg, step, dataset, argv) as r:
            stages.run_stage(step, spark, cfg, r)


def _unseen_by_spark(spark: "SparkSession", run: Run, root: str, ic, dirname: bool) -> "DataFrame":
    """The files Spark's file stream never returns (a leading ``_`` or ``.``, or empty) that raw_images
    and rejects do not hold yet, read as ingest reads them."""
    entries = [e for e in sources.list_sources(spark, [sources.Source(root, True)], ic)
               if not e.reason and (e.name[:1] in ("_", ".") or e.length == 0)]
    if entries:
        known = set()
        for table in ("raw_images", "rejects"):
            path = run.table_path(table)
            if delta.is_delta_table(spark, path):
                uris = spark.createDataFrame([(e.uri,) for e in entries], "source_uri string")
                known |= {r.source_uri for r in spark.read.format("delta").load(path).select("source_uri")
                          .join(uris, "source_uri", "left_semi").distinct().collect()}
        entries = [e for e in entries if e.uri not in known]
    if not entries:
        return spark.createDataFrame([], schemas.OBJECTS)
    log(f"[watch] {len(entries)} file(s) named _* or .*, or empty (Spark's file stream skips them): found by the "
        "driver's listing")
    return sources.read_entries(spark, entries, ic, dirname)

