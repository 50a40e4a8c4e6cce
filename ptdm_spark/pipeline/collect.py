"""``ptdm collect``: images from URL lists into ``raw_images``, every try in ``fetch_log``.

read the lists -> what still needs fetching (not collected yet, not failed for good, tries left)
-> in batches of ``collect.batch_urls``: fetch in Spark tasks (a host's URLs all in one task, so
its connection and rate limits hold for the job) -> stage the results once -> ``raw_images``
(the fetched images, with their provenance), ``fetch_log`` (one row per try), ``rejects`` (each
URL that failed, with its reason; a URL that later succeeds leaves rejects).

Every URL of the lists ends in exactly one place: ``raw_images`` (``source_uri`` = the URL) or
``rejects`` (``stage = 'collect'``). Each batch is committed before the next starts, and a rerun
starts from the tables, so a killed collect loses at most the batch in flight and never fetches
an image it already has.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptdm_spark import hooks, schemas
from ptdm_spark.config import CollectConfig, Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta, fetch, sources
from ptdm_spark.pipeline.job import Clock, by, log, read_table, stage_frame, write_table
from ptdm_spark.runs import Run
from ptdm_spark.transforms import ingest as t_ingest

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

LIST_COLUMNS = ("url", "label", "split", "license", "caption")


def _fetched_schema():
    from pyspark.sql import types as T

    attempt = T.StructType([
        T.StructField("attempt", T.IntegerType()), T.StructField("status", T.IntegerType()),
        T.StructField("reason", T.StringType()), T.StructField("error", T.StringType()),
        T.StructField("elapsed_ms", T.LongType()), T.StructField("final_url", T.StringType()),
        T.StructField("started_at", T.TimestampType()),
    ])
    return T.StructType([
        T.StructField("url", T.StringType()), T.StructField("host", T.StringType()),
        T.StructField("label", T.StringType()), T.StructField("split", T.StringType()),
        T.StructField("license", T.StringType()), T.StructField("caption", T.StringType()),
        T.StructField("content", T.BinaryType()), T.StructField("status", T.IntegerType()),
        T.StructField("final_url", T.StringType()), T.StructField("etag", T.StringType()),
        T.StructField("last_modified", T.StringType()), T.StructField("modified_at", T.TimestampType()),
        T.StructField("content_type", T.StringType()),
        T.StructField("fetched_at", T.TimestampType()), T.StructField("reason", T.StringType()),
        T.StructField("error", T.StringType()), T.StructField("attempts", T.ArrayType(attempt)),
    ])


@dataclass(frozen=True)
class CollectInputs:
    """The URL lists, read and checked before the job starts (misuse writes no runs row)."""

    lists: tuple[str, ...]
    urls: "DataFrame"  # one row per distinct URL: url, label, split, license, caption

    @classmethod
    def prepare(cls, spark: "SparkSession", lists: list[str], labels: str) -> "CollectInputs":
        import os

        from pyspark.sql import functions as F

        frames = []
        for path in lists:
            if not sources.is_uri(path) and not os.path.exists(path):
                raise UsageError(f"no such URL list: {path}")
            df = sources.read_tabular(spark, path, f"URL list {path}")
            if "url" not in df.columns:
                raise UsageError(f"URL list {path}: no 'url' column (columns: {', '.join(df.columns[:8]) or 'none'})")
            if labels == "column" and "label" not in df.columns:
                raise UsageError(f"URL list {path}: --labels column, but the list has no 'label' column "
                                 "(use --labels none)")
            frames.append(df.select(*[
                (F.col(c).cast("string") if c in df.columns else F.lit(None).cast("string")).alias(c)
                for c in LIST_COLUMNS]))
        urls = frames[0]
        for f in frames[1:]:
            urls = urls.unionByName(f)
        if labels == "none":
            urls = urls.withColumn("label", F.lit(None).cast("string"))
        urls = urls.withColumn("url", F.trim("url")).filter(F.col("url").isNotNull() & (F.col("url") != ""))
        # A URL listed twice is fetched once; its first non-empty label, split, license, caption.
        urls = urls.groupBy("url").agg(*[F.min(c).alias(c) for c in LIST_COLUMNS[1:]])
        return cls(tuple(lists), urls)


def collect(spark: "SparkSession", cfg: Config, run: Run, inputs: CollectInputs) -> dict[str, Any]:
    from pyspark.sql import functions as F

    cc = cfg.collect
    clock = Clock("collect")
    urls = stage_frame(spark, inputs.urls, run, "urls")
    listed = urls.count()
    todo, state = _todo(spark, run, urls, cc)
    todo = stage_frame(spark, todo, run, "todo")
    n = todo.count()
    run.counts.update(urls=listed, **state, todo=n)
    clock.lap(f"{listed:,} distinct URL(s) in {len(inputs.lists)} list(s): {state['already_collected']:,} collected "
              f"before, {state['failed_for_good']:,} failed for good, {state['out_of_tries']:,} out of tries; "
              f"{n:,} to fetch")
    batches = max(1, math.ceil(n / cc.batch_urls)) if n else 0
    parts = cc.partitions or 2 * spark.sparkContext.defaultParallelism
    totals: dict[str, int] = {"fetched": 0, "bytes": 0, "inserted": 0, "tries": 0}
    reasons_total: dict[str, int] = {}
    for b in range(batches):
        if b:
            hooks.pause_point("collect.batch")  # fault tests: the previous batch is committed
        batch = todo.filter(F.pmod(F.xxhash64("url"), F.lit(batches)) == b) if batches > 1 else todo
        size = batch.count() if batches > 1 else n
        clock.expect(size, parts)
        fetched = stage_frame(spark, _fetch(batch, cc, parts), run, f"fetched-{b}")
        got = _write_batch(spark, run, fetched)
        for k in totals:
            totals[k] += got[k]
        for k, v in got["reasons"].items():
            reasons_total[k] = reasons_total.get(k, 0) + v
        clock.lap(f"batch {b + 1}/{batches}: {size:,} URL(s): {got['fetched']:,} fetched "
                  f"({got['bytes'] / 1e6:.1f} MB), {sum(got['reasons'].values()):,} failed"
                  + (f" ({_reasons_text(got['reasons'])})" if got["reasons"] else ""))
        _host_lines(fetched)
    run.counts.update(fetched=totals["fetched"], fetched_bytes=totals["bytes"], inserted=totals["inserted"],
                      tries=totals["tries"], failed=sum(reasons_total.values()),
                      **{f"failed_{k}": v for k, v in reasons_total.items()})
    _accounting(spark, run, urls, listed)
    return run.counts


def _todo(spark: "SparkSession", run: Run, urls: "DataFrame", cc: CollectConfig) -> tuple["DataFrame", dict[str, int]]:
    """The URLs to fetch now, with ``prior`` (tries made by earlier runs), and how many were left
    out and why."""
    from pyspark.sql import functions as F

    raw = read_table(spark, run, "raw_images", schemas.RAW_IMAGES)
    have = raw.filter(F.col("source_format") == "url").select(F.col("source_uri").alias("url")).distinct()
    flog = read_table(spark, run, "fetch_log", schemas.FETCH_LOG)
    last = flog.groupBy("url").agg(F.count(F.lit(1)).alias("prior"),
                                   F.max_by("reason", "attempt").alias("last_reason"),
                                   F.max_by("status", "attempt").alias("last_status"))
    transient = F.col("last_reason").isin(*sorted(fetch.TRANSIENT)) | F.col("last_status").isin(
        *sorted(fetch.TRANSIENT_STATUS))
    joined = (urls.join(have.withColumn("have", F.lit(True)), "url", "left")
              .join(last, "url", "left")
              .withColumn("prior", F.coalesce("prior", F.lit(0)).cast("int")))
    state = (joined.withColumn("why", F.when(F.col("have"), "already_collected")
                               .when(F.col("last_reason").isNotNull() & ~transient, "failed_for_good")
                               .when(F.col("prior") >= cc.max_attempts, "out_of_tries")
                               .otherwise("todo")))
    counts = {k: 0 for k in ("already_collected", "failed_for_good", "out_of_tries")}
    counts.update({k: v for k, v in by(state, "why").items() if k != "todo"})
    todo = state.filter(F.col("why") == "todo").select(*LIST_COLUMNS, "prior")
    return todo, counts


def _fetch(batch: "DataFrame", cc: CollectConfig, parts: int) -> "DataFrame":
    from pyspark.sql import functions as F

    policy = fetch.Policy(
        connect_timeout=cc.connect_timeout, read_timeout=cc.read_timeout, attempts=cc.attempts, backoff=cc.backoff,
        max_retry_after=cc.max_retry_after, max_bytes=cc.max_bytes, max_redirects=cc.max_redirects,
        user_agent=cc.user_agent, honour_robots=cc.honour_robots, per_host_connections=cc.per_host_connections,
        per_host_rate=cc.per_host_rate, threads=cc.threads)
    max_attempts = cc.max_attempts
    host = F.lower(F.coalesce(F.expr("parse_url(url, 'HOST')"), F.lit("")))
    by_host = batch.withColumn("host", host).repartition(parts, "host")
    return by_host.mapInPandas(lambda frames: fetch_frames(frames, policy, max_attempts), _fetched_schema())


def fetch_frames(frames: Iterator["pd.DataFrame"], policy: fetch.Policy, max_attempts: int,
                 flush: int = 64) -> Iterator["pd.DataFrame"]:
    """The per-task work (runs on the executors): fetch each frame's URLs, yield results in small
    frames so that at most ``flush`` fetched bodies are held at once per task."""
    import pandas as pd

    from ptdm_spark.imaging.sniff import detect_format
    from ptdm_spark.io.fetch import http_date

    def is_image(body: bytes) -> bool:
        return detect_format(body) is not None

    def ts(seconds: float | None):
        return None if seconds is None else pd.Timestamp(round(seconds * 1e6), unit="us")  # Arrow: us, exactly

    for frame in frames:
        meta = frame.set_index("url", drop=False).to_dict("index")
        prior = {u: int(m["prior"] or 0) for u, m in meta.items()}
        rows: list[dict[str, Any]] = []
        for o in fetch.fetch_all(list(meta), policy, is_image, prior.get, max_attempts):
            m = meta[o.url]
            rows.append({
                "url": o.url, "host": m["host"], "label": m["label"], "split": m["split"], "license": m["license"],
                "caption": m["caption"], "content": o.content, "status": o.status, "final_url": o.final_url,
                "etag": o.etag, "last_modified": o.last_modified, "modified_at": ts(http_date(o.last_modified)),
                "content_type": o.content_type,
                "fetched_at": ts(o.fetched_at), "reason": o.reason, "error": o.error,
                "attempts": [{"attempt": prior[o.url] + a.attempt, "status": a.status, "reason": a.reason,
                              "error": a.error, "elapsed_ms": a.elapsed_ms, "final_url": a.final_url,
                              "started_at": ts(a.started_at)} for a in o.attempts],
            })
            if len(rows) >= flush:
                yield pd.DataFrame(rows)
                rows = []
        if rows:
            yield pd.DataFrame(rows)


def _write_batch(spark: "SparkSession", run: Run, fetched: "DataFrame") -> dict[str, Any]:
    """One batch's results into raw_images, then fetch_log, then rejects (in that order: a crash in
    between never makes a rerun fetch an image raw_images already holds)."""
    from pyspark.sql import functions as F

    ok = fetched.filter(F.col("content").isNotNull())
    provenance = F.struct(
        F.col("url"), F.col("final_url"), F.col("status").alias("http_status"), F.col("fetched_at"),
        F.col("etag"), F.col("last_modified"), F.col("content_type"), F.col("license"), F.col("caption"))
    objects = ok.select(
        F.col("url").alias("source_uri"), F.lit("url").alias("source_format"), "content",
        F.length("content").cast("long").alias("size_bytes"), "label", F.lit(None).cast("string").alias("rel_path"),
        F.col("modified_at").alias("source_modified_at"),
        F.lit(None).cast("string").alias("error_reason"), F.lit(None).cast("string").alias("error_detail"),
        F.col("split").alias("source_split"), provenance.alias("provenance"))
    metrics = write_table(spark, run, "raw_images", t_ingest.raw_images(objects, run.run_id), ("source_uri", "image_id"))

    tries = (fetched.select("url", "host", F.explode("attempts").alias("a"))
             .select("url", "host", "a.attempt", "a.status", "a.reason", "a.error", "a.elapsed_ms", "a.final_url",
                     F.lit(None).cast("long").alias("bytes"), "a.started_at", F.lit(run.run_id).alias("run_id")))
    sizes = ok.select("url", F.length("content").cast("long").alias("n"))
    tries = (tries.join(sizes, "url", "left")
             .withColumn("bytes", F.when(F.col("reason").isNull(), F.col("n"))).drop("n"))
    write_table(spark, run, "fetch_log", schemas.conform(tries, schemas.FETCH_LOG), ("url", "run_id", "attempt"))

    outcome = fetched.select(
        F.col("url").alias("source_uri"), F.lit(None).cast("string").alias("image_id"), F.lit("collect").alias("stage"),
        "reason", F.col("error").alias("detail"), F.lit(run.run_id).alias("run_id"),
        F.current_timestamp().alias("rejected_at"))
    _settle_rejects(spark, run, outcome)

    stats = fetched.agg(
        F.count(F.when(F.col("content").isNotNull(), 1)).alias("fetched"),
        F.sum(F.length("content")).alias("bytes"), F.sum(F.size("attempts")).alias("tries")).first()
    return {"fetched": int(stats["fetched"]), "bytes": int(stats["bytes"] or 0), "tries": int(stats["tries"] or 0),
            "inserted": delta.rows_inserted(metrics), "reasons": by(fetched.filter("reason IS NOT NULL"), "reason")}


def _settle_rejects(spark: "SparkSession", run: Run, outcome: "DataFrame") -> None:
    """Each URL of the batch has at most one collect reject, and only while it has failed: a
    failure inserts or replaces it, a success deletes it."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = run.table_path("rejects")
    rows = outcome.select(*[f.name for f in schemas.REJECTS.fields])
    if not delta.is_delta_table(spark, path):
        failures = rows.filter(F.col("reason").isNotNull())
        if failures.isEmpty():
            return
        delta.merge_into(spark, schemas.conform(failures, schemas.REJECTS), path, ("source_uri", "stage", "reason"))
    else:
        (DeltaTable.forPath(spark, path).alias("t")
         .merge(rows.alias("s"), "t.source_uri = s.source_uri AND t.stage = 'collect'")
         .whenMatchedDelete("s.reason IS NULL")
         .whenMatchedUpdateAll("s.reason IS NOT NULL")
         .whenNotMatchedInsertAll("s.reason IS NOT NULL")
         .execute())
    delta.register(spark, run.dataset, "rejects", path)
    run.output_versions["rejects"] = delta.commit_of(spark, path, run.run_id)[0]


def _host_lines(fetched: "DataFrame", top: int = 5) -> None:
    """Per host (the busiest ``top``): URLs fetched and failed, bytes, and URLs/s of its task."""
    from pyspark.sql import functions as F

    rows = (fetched.groupBy("host")
            .agg(F.count(F.when(F.col("content").isNotNull(), 1)).alias("ok"),
                 F.count(F.when(F.col("reason").isNotNull(), 1)).alias("failed"),
                 F.sum(F.length("content")).alias("bytes"),
                 (F.sum(F.aggregate("attempts", F.lit(0).cast("long"), lambda acc, a: acc + a["elapsed_ms"]))
                  / 1000.0).alias("busy_s"))
            .orderBy(F.desc(F.col("ok") + F.col("failed")), "host").limit(top).collect())
    for r in rows:
        busy = float(r["busy_s"] or 0)
        log(f"[collect]   {r['host'] or '(no host)'}: {r['ok']:,} fetched, {r['failed']:,} failed, "
            f"{(r['bytes'] or 0) / 1e6:.1f} MB, {busy:.1f}s in requests")


def _accounting(spark: "SparkSession", run: Run, urls: "DataFrame", listed: int) -> None:
    """Where every listed URL is now (raw_images or rejects), read from the tables."""
    from pyspark.sql import functions as F

    raw = spark.read.format("delta").load(run.table_path("raw_images"))
    in_raw = raw.filter(F.col("source_format") == "url").select(F.col("source_uri").alias("url")).distinct()
    rej_path = run.table_path("rejects")
    rejected = (spark.read.format("delta").load(rej_path).filter("stage = 'collect'")
                .select(F.col("source_uri").alias("url"), "reason") if delta.is_delta_table(spark, rej_path)
                else spark.createDataFrame([], "url string, reason string"))
    placed = (urls.select("url").join(in_raw.withColumn("r", F.lit(1)), "url", "left")
              .join(rejected.withColumn("j", F.lit(1)), "url", "left"))
    where = placed.agg(F.count(F.when(F.col("r").isNotNull() & F.col("j").isNull(), 1)).alias("raw"),
                       F.count(F.when(F.col("j").isNotNull() & F.col("r").isNull(), 1)).alias("rej"),
                       F.count(F.when(F.col("j").isNotNull() & F.col("r").isNotNull(), 1)).alias("both"),
                       F.count(F.when(F.col("j").isNull() & F.col("r").isNull(), 1)).alias("nowhere")).first()
    reasons = by(placed.filter(F.col("j").isNotNull()), "reason")
    run.counts.update(in_raw_images=int(where["raw"]), in_rejects=int(where["rej"]),
                      unaccounted=int(where["both"]) + int(where["nowhere"]))
    print(f"collect: {listed:,} URL(s): {where['raw']:,} in raw_images, {where['rej']:,} in rejects"
          + (f" ({_reasons_text(reasons)})" if reasons else ""))
    if where["both"] or where["nowhere"]:
        log(f"[collect] warning: {where['nowhere']:,} URL(s) are in neither table and {where['both']:,} in both")


def _reasons_text(reasons: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
