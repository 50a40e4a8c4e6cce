"""Erasure (takedown, right to be forgotten): ``ptdm erase`` and ``ptdm erase --verify``.

Erasing images (named by image id, by the URI of a source object, or in a manifest file) is one
job:

1. :func:`plan`, before any write (an unknown id or URI is a usage error): the image ids, every
   source object and fetched URL behind them, the rows each table holds of them, the releases
   whose curated rows held them, the analysed curated versions that held them;
2. one Delta DELETE per table (every commit stamped with the run id); then ``dedupe`` and
   ``curate`` run again inside the same job, so a component whose kept image was erased keeps
   its next best member, and that member enters ``curated``;
3. releases that held an erased image are marked amended (``amended_at``, ``amended_by``);
4. ``VACUUM ... RETAIN 0 HOURS`` of every table that can hold image data: the files older
   versions point to are deleted, so the bytes are gone from every data file, and time travel to
   a version before the erasure fails (it can never return the image);
5. an ``erasures`` row: ids, URIs and hashes (never content), reason, user, time, rows deleted
   and the table versions written.

An image id is the SHA-256 of the source bytes, so erasing one object erases every object with
the same bytes (they are one image). Objects with other bytes but identical pixels are other
images: the plan names them (their normalized bytes are the same) and leaves them.

:func:`verify` proves absence without trusting the tables: it opens every Parquet file under the
dataset's folder (all of them, not only the current versions') with pyarrow and looks for the id
in every string value and for the image's SHA-256 (original and normalized bytes) in every
binary value.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from ptdm_spark.runs import Run

ID_RE = re.compile(r"^[0-9a-f]{64}$")
TABLE = "erasures"
# Every table whose rows can hold an image, its id, its hashes or its source's URI: rows are
# deleted from these, and these are vacuumed. (runs, releases, classes and erasures hold no image
# data: runs.args may hold an id or URI given on a command line, erasures records them by design.)
IMAGE_TABLES = ("raw_images", "rejects", "fetch_log", "images", "duplicates", "label_conflicts", "phash_index",
                "phash_pairs", "splits", "leakage", "curated", "label_history", "augmented", "outliers", "stats",
                "correlations", "scorecard")
ANALYSIS_TABLES = ("stats", "correlations", "outliers", "scorecard")


def log(msg: str) -> None:
    from ptdm_spark.pipeline.job import log as _log

    _log(msg)


# --- what to erase -------------------------------------------------------------------------------


def read_manifest(path: str) -> tuple[list[str], list[str]]:
    """(image ids, source URIs) from a local file: ``.csv`` / ``.jsonl`` with a column ``image_id``
    and/or ``source_uri``, or any other text file with one entry per line (64 hex digits = an
    image id, anything else a URI; ``#`` starts a comment)."""
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        raise UsageError(f"--manifest {path}: no such file")
    ids, uris = [], []
    low = p.name.lower()
    try:
        if low.endswith(".csv"):
            with p.open(newline="") as f:
                reader = csv.DictReader(f)
                cols = set(reader.fieldnames or ())
                if not cols & {"image_id", "source_uri"}:
                    raise UsageError(f"--manifest {path}: needs a column image_id or source_uri "
                                     f"(has: {', '.join(sorted(cols))})")
                rows = list(reader)
        elif low.endswith((".jsonl", ".ndjson")):
            rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        else:
            rows = []
            for line in p.read_text().splitlines():
                entry = line.split("#", 1)[0].strip()
                if entry:
                    rows.append({"image_id": entry} if ID_RE.match(entry.lower()) else {"source_uri": entry})
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"--manifest {path}: cannot read it ({str(exc).splitlines()[0][:160]})") from None
    for r in rows:
        if not isinstance(r, dict):
            raise UsageError(f"--manifest {path}: every line must be a JSON object")
        if (r.get("image_id") or "").strip():
            ids.append(r["image_id"].strip().lower())
        if (r.get("source_uri") or "").strip():
            uris.append(r["source_uri"].strip())
    if not ids and not uris:
        raise UsageError(f"--manifest {path}: names no image id and no source URI")
    return ids, uris


def check_ids(ids: Iterable[str]) -> list[str]:
    out = []
    for i in ids:
        if not ID_RE.match(i.lower()):
            raise UsageError(f"--image-id {i!r}: an image id is 64 hex digits (the SHA-256 of the source bytes)")
        out.append(i.lower())
    return out


def uri_forms(uri: str) -> set[str]:
    """The spellings a source URI may be stored under: a local path becomes ``file:/abs/path``
    (Hadoop's qualified form, as ``raw_images`` holds it) or ``file:///abs/path``."""
    forms = {uri}
    if uri.startswith("file:///"):
        forms.add("file:" + uri[len("file://"):])
    elif uri.startswith("file:/"):
        forms.add("file://" + uri[len("file:"):])
    elif "://" not in uri and not uri.startswith("file:"):
        p = os.path.abspath(os.path.expanduser(uri))
        forms |= {f"file:{p}", Path(p).as_uri()}
    return forms


@dataclass
class Plan:
    """Everything one erasure touches, decided before any write."""

    dataset: str
    image_ids: list[str]
    source_uris: list[str]
    urls: list[str]
    augmented_ids: list[str]
    image_sha256: list[str]
    pixel_sha256: list[str]
    phashes: list[int]  # pHash values (whole or inner) no remaining image holds: their phash_pairs go
    curated_versions: list[int]  # analysed curated versions that held an erased image
    releases: list[str]  # releases whose curated rows held an erased image
    unchecked_releases: list[str]  # releases whose curated version no longer reads (an earlier erasure)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows to delete
    objects: int = 0  # source objects (raw_images rows, ingest/collect rejects)
    pixel_twins: list[str] = field(default_factory=list)  # other images with identical pixels (kept)
    # Every pHash value the erased images held: their phash_index rows go (a value another image
    # still holds is then searched again, which only re-finds its pairs; kept, its row could claim
    # a search that no longer stands, e.g. a whole value now held only as someone's inner value).
    index_phashes: list[int] = field(default_factory=list)


def _in(col: "Column", values: Iterable[Any]) -> "Column":
    from pyspark.sql import functions as F

    values = list(values)
    return col.isin(values) if values else F.lit(False)


def _overlaps(col: "Column", values: Iterable[str]) -> "Column":
    from pyspark.sql import functions as F

    values = list(values)
    if not values:
        return F.lit(False)
    return F.coalesce(F.arrays_overlap(col, F.array(*[F.lit(v) for v in values])), F.lit(False))


def conditions(p: Plan) -> dict[str, "Column"]:
    """table -> the rows of it that derive from the erased objects."""
    from pyspark.sql import functions as F

    ids = [*p.image_ids, *p.augmented_ids]
    img, uris = F.col("image_id"), p.source_uris
    return {
        "raw_images": _in(img, ids) | _in(F.col("source_uri"), uris),
        "rejects": _in(img, ids) | _in(F.col("source_uri"), uris),
        "fetch_log": _in(F.col("url"), p.urls) | _in(F.col("final_url"), p.urls),
        "images": _in(img, ids),
        "duplicates": _in(img, ids) | _in(F.col("kept_id"), ids),
        "label_conflicts": _in(F.col("kept_id"), ids) | _overlaps(F.col("image_ids"), ids),
        "phash_index": _in(F.col("phash"), p.index_phashes),
        "phash_pairs": _in(F.col("a"), p.phashes) | _in(F.col("b"), p.phashes),
        "splits": _in(img, ids),
        "leakage": _in(img, ids) | _in(F.col("kept_id"), ids) | _overlaps(F.col("train_ids"), ids),
        "curated": _in(img, ids),
        "label_history": _in(img, ids),
        "augmented": _in(img, ids) | _in(F.col("source_id"), p.image_ids),
        # Analyses of a curated version that held the image: its statistics, outliers (with the
        # image's own row) and scorecard are derived from it (re-run ptdm analyze).
        "outliers": _in(img, ids) | _in(F.col("curated_version"), p.curated_versions),
        "stats": _in(F.col("curated_version"), p.curated_versions),
        "correlations": _in(F.col("curated_version"), p.curated_versions),
        "scorecard": _in(F.col("curated_version"), p.curated_versions),
    }


def _table(spark: "SparkSession", cfg: Config, dataset: str, table: str) -> "DataFrame | None":
    from ptdm_spark.io import delta

    path = cfg.lakehouse.table_path(dataset, table)
    return spark.read.format("delta").load(path) if delta.is_delta_table(spark, path) else None


def _holds(spark: "SparkSession", cfg: Config, dataset: str, version: int, ids: list[str]) -> bool | None:
    """Whether ``curated`` at ``version`` held one of ``ids``; None when that version no longer reads."""
    from pyspark.sql import functions as F

    try:
        cur = (spark.read.format("delta").option("versionAsOf", int(version))
               .load(cfg.lakehouse.table_path(dataset, "curated")))
        return cur.filter(_in(F.col("image_id"), ids)).limit(1).count() > 0
    except Exception:  # py4j: a vacuumed version (files gone) or a version before the table existed
        return None


def _curated_since(spark: "SparkSession", cfg: Config, dataset: str, ids: list[str]) -> int | None:
    """The oldest version of ``curated`` at which one of ``ids`` is known to be there: the
    newest commit of the run that wrote its row now (rows keep their run_id until changed); None
    when none of them is in curated now (then an unreadable version cannot be checked)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    cur = _table(spark, cfg, dataset, "curated")
    if cur is None or not ids:
        return None
    runs = {r[0] for r in cur.filter(_in(F.col("image_id"), ids)).select("run_id").distinct().collect()}
    if not runs:
        return None
    written: dict[str, int] = {}
    for c in DeltaTable.forPath(spark, cfg.lakehouse.table_path(dataset, "curated")).history().select(
            "version", "userMetadata").collect():
        try:
            run_id = json.loads(c["userMetadata"] or "{}").get("run_id")
        except ValueError:
            continue
        if run_id in runs:
            written[run_id] = max(written.get(run_id, -1), int(c["version"]))
    return min(written.values()) if written else None


def plan(spark: "SparkSession", cfg: Config, dataset: str, ids: list[str], uris: list[str]) -> Plan:
    """Resolve ids and URIs to everything derived from them. UsageError (before any write) for an
    id or URI the dataset does not know."""
    from pyspark.sql import functions as F

    from ptdm_spark.sharing import releases as rel

    ids = check_ids(dict.fromkeys(ids))
    t = {name: _table(spark, cfg, dataset, name) for name in (*IMAGE_TABLES, "releases")}
    if t["raw_images"] is None:
        raise UsageError(f"unknown dataset {dataset!r}: no raw_images table under {cfg.lakehouse.root_uri}/{dataset}")
    raw, rejects, fetch_log, images, aug = t["raw_images"], t["rejects"], t["fetch_log"], t["images"], t["augmented"]

    # URIs -> image ids (a URI may also be a failed fetch, with no image at all).
    forms = {u: uri_forms(u) for u in dict.fromkeys(uris)}
    all_forms = sorted(set().union(*forms.values())) if forms else []
    found_uris: set[str] = set()
    uri_ids: set[str] = set()
    for df, cols in ((raw, ("source_uri", "image_id")), (rejects, ("source_uri", "image_id"))):
        if df is not None and all_forms:
            for r in df.filter(_in(F.col("source_uri"), all_forms)).select(*cols).distinct().collect():
                found_uris.add(r[0])
                if r[1]:
                    uri_ids.add(r[1])
    if fetch_log is not None and all_forms:
        found_uris |= {r[0] for r in fetch_log.filter(_in(F.col("url"), all_forms)).select("url").distinct().collect()}
    for u, fs in forms.items():
        if not fs & found_uris:
            raise UsageError(f"--source-uri {u}: dataset {dataset!r} has no source object with this URI "
                             "(not in raw_images, rejects or fetch_log)")

    # Ids must be known somewhere (an id known only to augmented names an augmented copy).
    known: dict[str, set[str]] = {}
    for name, df in (("raw_images", raw), ("images", images), ("rejects", rejects), ("augmented", aug)):
        if df is not None and ids:
            known[name] = {r[0] for r in df.filter(_in(F.col("image_id"), ids)).select("image_id").distinct().collect()}
    unknown = [i for i in ids if not any(i in k for k in known.values())]
    if unknown:
        raise UsageError(f"--image-id {unknown[0]}: no such image in dataset {dataset!r} (not in raw_images, "
                         f"images, rejects or augmented)" + (f"; {len(unknown) - 1} more unknown" if len(unknown) > 1 else ""))
    sourced = set().union(*(known.get(k, set()) for k in ("raw_images", "images", "rejects")))
    image_ids = sorted({i for i in ids if i in sourced} | uri_ids)
    copies_named = sorted(set(ids) - sourced)

    # Every source object and fetched URL behind those images.
    objs = raw.filter(_in(F.col("image_id"), image_ids) | _in(F.col("source_uri"), found_uris)).select(
        "source_uri", F.col("provenance.url").alias("url"), F.col("provenance.final_url").alias("final_url")).collect()
    source_uris = {r["source_uri"] for r in objs} | found_uris
    urls = {u for r in objs for u in (r["url"], r["final_url"]) if u}
    if rejects is not None:
        source_uris |= {r[0] for r in rejects.filter(_in(F.col("image_id"), image_ids)).select("source_uri").collect()}
    if fetch_log is not None:
        urls |= {r[0] for r in fetch_log.filter(_in(F.col("url"), sorted(source_uris))).select("url").distinct().collect()}

    augmented_ids = sorted(set(copies_named) | ({r[0] for r in aug.filter(_in(F.col("source_id"), image_ids))
                                                  .select("image_id").collect()} if aug is not None else set()))
    sha, pix, phashes, twins, values = [], [], [], [], set()
    if images is not None and image_ids:
        # The erased images' pHash values (whole and inner) leave phash_index; those no other image
        # holds leave phash_pairs too.
        inner = F.col("phash_inner") if "phash_inner" in images.columns else F.lit(None).cast("long")
        mine = images.filter(_in(F.col("image_id"), image_ids)).select(
            F.sha2("image", 256).alias("sha"), "pixel_sha256", "phash", inner.alias("phash_inner")).collect()
        sha = sorted({r["sha"] for r in mine})
        pix = sorted({r["pixel_sha256"] for r in mine})
        others = images.filter(~_in(F.col("image_id"), image_ids))
        values = {v for r in mine for v in (r["phash"], r["phash_inner"]) if v is not None}
        theirs = {r[0] for r in others.select(F.explode(F.array("phash", inner)).alias("v"))
                  .filter(_in(F.col("v"), values)).distinct().collect()}
        phashes = sorted(values - theirs)
        twins = sorted(r[0] for r in others.filter(_in(F.col("pixel_sha256"), pix)).select("image_id").collect())

    # Analysed curated versions and releases that held an erased image (read before anything changes).
    every = [*image_ids, *augmented_ids]
    versions: set[int] = set()
    for name in ANALYSIS_TABLES:
        if t[name] is not None:
            versions |= {int(r[0]) for r in t[name].select("curated_version").distinct().collect()}
    held = sorted(v for v in versions if every and _holds(spark, cfg, dataset, v, every))
    amend, unchecked = [], []
    since: list[int | None] = []
    for r in rel.all_releases(spark, cfg, dataset):
        h = _holds(spark, cfg, dataset, r.curated_version, every) if every else False
        if h is None:  # an earlier erasure vacuumed that version: decide from the rows curated holds now
            since = since or [_curated_since(spark, cfg, dataset, every)]
            h = None if since[0] is None else since[0] <= r.curated_version
        if h is None:
            unchecked.append(r.name)
        elif h:
            amend.append(r.name)

    p = Plan(dataset, image_ids, sorted(source_uris), sorted(urls), augmented_ids, sha, pix, phashes, held, amend,
             unchecked, pixel_twins=twins, index_phashes=sorted(values))
    conds = conditions(p)
    for name in IMAGE_TABLES:
        if t[name] is not None:
            p.rows[name] = t[name].filter(conds[name]).count()
    p.objects = p.rows.get("raw_images", 0)
    if rejects is not None:
        p.objects += rejects.filter(conds["rejects"] & F.col("stage").isin("ingest", "collect")).count()
    return p


def describe(p: Plan) -> list[str]:
    """The plan as lines for the terminal (no content, ids shortened)."""
    def short(xs: list[str], n: int = 3) -> str:
        return ", ".join(x[:16] for x in xs[:n]) + (f" (+{len(xs) - n})" if len(xs) > n else "")

    lines = [f"{len(p.image_ids)} image(s) [{short(p.image_ids)}], {p.objects} source object(s), "
             f"{len(p.urls)} URL(s), {len(p.augmented_ids)} augmented cop(ies)"]
    rows = ", ".join(f"{t} {n}" for t, n in p.rows.items() if n) or "none"
    lines.append(f"rows to delete: {rows}")
    if p.releases:
        lines.append(f"releases to mark amended: {', '.join(p.releases)}")
    if p.unchecked_releases:
        lines.append(f"releases not checked (their curated version no longer reads): {', '.join(p.unchecked_releases)}")
    if p.curated_versions:
        lines.append("analyses of curated version(s) " + ", ".join(map(str, p.curated_versions))
                     + " held the image(s): their stats, correlations, outliers, scorecard and report go")
    if p.pixel_twins:
        lines.append(f"WARNING: {len(p.pixel_twins)} other image(s) have identical pixels and are NOT erased "
                     f"(erase them too with --image-id): {', '.join(p.pixel_twins)}")
    return lines


# --- erasing ---------------------------------------------------------------------------------------


def run(spark: "SparkSession", cfg: Config, p: Plan, reason: str, argv: list[str]) -> dict[str, Any]:
    """Carry out plan ``p`` as one job (see the module docstring); returns the run's counts."""
    from delta.tables import DeltaTable
    from pyspark.sql import Row

    from ptdm_spark import schemas, stages
    from ptdm_spark.io import delta
    from ptdm_spark.pipeline.job import Clock, job, write_table

    with job(spark, cfg, "erase", p.dataset, argv) as r:
        clock = Clock("erase")
        conds = conditions(p)
        deleted: dict[str, int] = {}
        for table, n in p.rows.items():
            if not n:
                continue
            path = r.table_path(table)
            r.note_input(spark, table)
            DeltaTable.forPath(spark, path).delete(conds[table])
            version, metrics = delta.commit_of(spark, path, r.run_id)
            r.output_versions[table] = version
            deleted[table] = metrics.get("numDeletedRows", n)
            log(f"[erase] {table}: deleted {deleted[table]} row(s) (version {version})")
        clock.lap(f"deleted {sum(deleted.values())} row(s) from {len(deleted)} table(s)")

        if deleted.get("images") and delta.is_delta_table(spark, r.table_path("duplicates")):
            stages.dedupe(spark, cfg.dedupe, r)  # re-chooses the kept image of every component
            clock.lap("ran dedupe again (components without the erased images)")
        if deleted.get("images") and delta.is_delta_table(spark, r.table_path("curated")):
            stages.curate(spark, cfg.curate, cfg.labels, r)  # the new kept images enter curated; classes counts updated
            clock.lap("ran curate again")

        _amend_releases(spark, r, p.releases)
        _drop_leftovers(spark, r, p.curated_versions)
        vacuumed = []
        for table in IMAGE_TABLES:
            path = r.table_path(table)
            if delta.is_delta_table(spark, path) and (table in deleted or _stale_files(spark, path)):
                vacuum(spark, path)
                r.output_versions[table] = delta.commit_of(spark, path, r.run_id)[0]
                vacuumed.append(table)
        clock.lap(f"vacuumed {len(vacuumed)} table(s) with retention 0: older versions' files are gone")

        row = Row(run_id=r.run_id, dataset=p.dataset, image_ids=p.image_ids + p.augmented_ids,
                  source_uris=p.source_uris, urls=p.urls, image_sha256=p.image_sha256, pixel_sha256=p.pixel_sha256,
                  objects=int(p.objects), reason=reason, user=_user(), erased_at=dt.datetime.now(dt.timezone.utc),
                  rows_deleted={k: int(v) for k, v in deleted.items()},
                  table_versions={k: int(v) for k, v in r.output_versions.items() if v is not None},
                  releases_amended=p.releases)
        write_table(spark, r, TABLE, spark.createDataFrame([row], schemas.ERASURES), ("run_id",))
        r.counts.clear()
        r.counts.update(images=len(p.image_ids), objects=p.objects, augmented=len(p.augmented_ids),
                        releases_amended=len(p.releases), tables_vacuumed=len(vacuumed),
                        **{f"deleted_{k}": v for k, v in deleted.items()})
        counts = dict(r.counts)
    return {**counts, "run_id": r.run_id}


def vacuum(spark: "SparkSession", path: str) -> None:
    """VACUUM RETAIN 0 HOURS: every file the current version does not use is deleted. Delta's
    safety check (no retention under 7 days) is lifted for this call only; deletion vectors, when
    a table has them, are purged first (a DELETE with them leaves the rows in the data files).

    VACUUM lists the table's folders in a Spark job of ``parallelPartitionDiscovery.parallelism``
    tasks, 10,000 by default: on an unpartitioned table that is 10,000 tasks for one folder, about
    30 s per table on 2 cores (3 s with the cluster's parallelism; benchmarks/README.md, round 2).
    The cluster's default parallelism is used unless the session was started with that setting."""
    from delta.tables import DeltaTable

    from ptdm_spark.io.delta import session_conf

    settings = {"spark.databricks.delta.retentionDurationCheck.enabled": "false"}
    listing = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    if not spark.sparkContext.getConf().contains(listing):
        settings[listing] = str(max(1, spark.sparkContext.defaultParallelism))
    with session_conf(spark, settings):
        table = DeltaTable.forPath(spark, path)
        props = table.detail().first()["properties"] or {}
        if str(props.get("delta.enableDeletionVectors", "false")).lower() == "true":
            spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
        table.vacuum(0.0)


def _stale_files(spark: "SparkSession", path: str) -> int:
    """Data files under the table's folder that its current version does not use (files of older
    versions, or of writes that failed): what a VACUUM would delete. A table that has none and no
    erased row now holds no erased byte, and is not vacuumed (its time travel keeps working)."""
    from ptdm_spark.io import sources

    current = {u.rsplit("/", 1)[-1] for u in spark.read.format("delta").load(path).inputFiles()}
    fs, root = sources.hadoop_fs(spark, path)
    n, it = 0, fs.listFiles(root, True)
    while it.hasNext():
        p = it.next().getPath()
        if "/_delta_log/" not in p.toString() and not p.getName().startswith(("_", ".")) \
                and p.getName() not in current:
            n += 1
    return n


def _amend_releases(spark: "SparkSession", r: "Run", names: list[str]) -> None:
    """Mark releases amended, adding the two columns to a releases table written before them."""
    if not names:
        return
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from ptdm_spark.io import delta

    path = r.table_path("releases")
    cols = set(spark.read.format("delta").load(path).columns)
    if "amended_at" not in cols:
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS (amended_at TIMESTAMP, amended_by ARRAY<STRING>)")
    DeltaTable.forPath(spark, path).update(
        F.col("name").isin(names),
        {"amended_at": F.current_timestamp(),
         "amended_by": F.array_union(F.coalesce(F.col("amended_by"), F.array().cast("array<string>")),
                                     F.array(F.lit(r.run_id)))})
    r.output_versions["releases"] = delta.commit_of(spark, path, r.run_id)[0]
    log(f"[erase] marked amended: release(s) {', '.join(names)}")


def _drop_leftovers(spark: "SparkSession", r: "Run", versions: list[int]) -> None:
    """Files outside the tables that can hold image bytes: the HTML reports (thumbnails) of the
    curated versions that held the image, and staging folders left by jobs that died."""
    from ptdm_spark.io import sources

    for v in versions:
        fs, path = sources.hadoop_fs(spark, f"{r.table_path('_reports')}/curated-v{v}")
        if fs.exists(path):
            fs.delete(path, True)
            log(f"[erase] removed the report of curated version {v}")
    fs, staging = sources.hadoop_fs(spark, r.table_path("_staging"))
    if not fs.exists(staging):
        return
    running = set()
    runs = _table(spark, r.config, r.dataset, "runs")
    if runs is not None:
        running = {x[0] for x in runs.filter("status = 'running'").select("run_id").collect()}
    for st in fs.listStatus(staging):
        name = st.getPath().getName()
        if name != r.run_id and name not in running:
            fs.delete(st.getPath(), True)
            log(f"[erase] removed the staging folder of dead run {name}")


def _user() -> str:
    from ptdm_spark.runs import _user as user

    return user()


# --- proving absence -------------------------------------------------------------------------------


@dataclass
class Needles:
    """What an image leaves in files: its id (any string value equal to it) and the SHA-256 of its
    bytes (original = the id; normalized, as ``images``/``curated`` hold them)."""

    image_id: str
    strings: set[str]
    digests: set[str]


@dataclass
class Scan:
    files: int = 0
    skipped: list[str] = field(default_factory=list)
    hits: list[str] = field(default_factory=list)  # "<file>: <column> holds <what>"


def needles(spark: "SparkSession", cfg: Config, dataset: str, image_id: str) -> tuple[Needles, str]:
    """The needles for ``image_id`` and where its normalized hash came from (erasures | images | none)."""
    from pyspark.sql import functions as F

    image_id = check_ids([image_id])[0]
    digests, source = {image_id}, "none"
    er = _table(spark, cfg, dataset, TABLE)
    if er is not None:
        for r in er.filter(F.array_contains("image_ids", image_id)).select("image_sha256").collect():
            digests |= set(r[0] or ())
            source = "erasures"
    if source == "none":
        images = _table(spark, cfg, dataset, "images")
        if images is not None:
            got = images.filter(F.col("image_id") == image_id).select(F.sha2("image", 256)).collect()
            if got:
                digests |= {got[0][0]}
                source = "images"
    return Needles(image_id, {image_id}, digests), source


def scan_table_file(local: str, n: Needles, keys: dict[str, bytes] | None = None) -> list[str]:
    """Every column of one Parquet file (``local`` path) holding the id or the image's bytes;
    ``keys``: the master keys of a dataset encrypted at rest (the file is decrypted to be searched)."""
    from ptdm_spark.protect.encryption import open_parquet

    hits: dict[str, None] = {}
    pf = open_parquet(local, keys)
    for i in range(pf.num_row_groups):
        t = pf.read_row_group(i)
        for name in t.column_names:
            for chunk in t.column(name).chunks:
                for what in _scan_array(name, chunk, n):
                    hits[what] = None
    return list(hits)


def _scan_array(name: str, arr: Any, n: Needles) -> Iterable[str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    tp = arr.type
    if pa.types.is_string(tp) or pa.types.is_large_string(tp):
        if len(arr) and pc.any(pc.is_in(arr, value_set=pa.array(sorted(n.strings), tp))).as_py():
            yield f"{name} holds the image id"
    elif pa.types.is_binary(tp) or pa.types.is_large_binary(tp):
        for v in arr.to_pylist():
            if v is not None and hashlib.sha256(v).hexdigest() in n.digests:
                yield f"{name} holds the image's bytes"
                break
    elif pa.types.is_map(tp):
        yield from _scan_array(f"{name}.key", arr.keys, n)
        yield from _scan_array(f"{name}.value", arr.items, n)
    elif pa.types.is_list(tp) or pa.types.is_large_list(tp) or pa.types.is_fixed_size_list(tp):
        yield from _scan_array(f"{name}[]", arr.flatten(), n)
    elif pa.types.is_struct(tp):
        for j in range(tp.num_fields):
            yield from _scan_array(f"{name}.{tp.field(j).name}", arr.field(j), n)


def parquet_files(spark: "SparkSession", cfg: Config, dataset: str) -> list[str]:
    """Every ``*.parquet`` file under the dataset's folder (data files of every version, Delta
    checkpoints, staging, ...), as URIs."""
    from ptdm_spark.io import sources

    fs, root = sources.hadoop_fs(spark, f"{cfg.lakehouse.root_uri.rstrip('/')}/{dataset}")
    if not fs.exists(root):
        return []
    out, it = [], fs.listFiles(root, True)
    while it.hasNext():
        p = it.next().getPath()
        if p.getName().endswith(".parquet"):
            out.append(p.toString())
    return sorted(out)


def verify(spark: "SparkSession", cfg: Config, dataset: str, n: Needles) -> Scan:
    """Scan every Parquet file of the dataset for ``n`` (the ``erasures`` table, which records the
    id by design, is skipped). Files on a non-local filesystem are copied to a temporary folder
    one at a time."""
    from ptdm_spark.io import sources
    from ptdm_spark.protect import encryption

    keys = encryption.check(cfg.security.encryption)
    scan = Scan()
    skip = f"/{dataset}/{TABLE}/"
    files = parquet_files(spark, cfg, dataset)
    log(f"[erase --verify] scanning {len(files)} Parquet file(s) under {cfg.lakehouse.root_uri.rstrip('/')}/{dataset}")
    with tempfile.TemporaryDirectory(prefix="ptdm-verify-") as tmp:
        for k, uri in enumerate(files, 1):
            if skip in uri:
                scan.skipped.append(uri)
                continue
            if uri.startswith("file:"):
                local = uri.removeprefix("file:")
                local = "/" + local.lstrip("/")
            else:
                fs, path = sources.hadoop_fs(spark, uri)
                local = os.path.join(tmp, "f.parquet")
                fs.copyToLocalFile(False, path, spark._jvm.org.apache.hadoop.fs.Path(Path(local).as_uri()), True)
            for what in scan_table_file(local, n, keys):
                scan.hits.append(f"{uri}: {what}")
            scan.files += 1
            if k % 500 == 0:
                log(f"[erase --verify] {k}/{len(files)} file(s) scanned, {len(scan.hits)} hit(s)")
    return scan
