"""The one Delta writer, and the catalog registration that goes with it.

Every table write of ptdm goes through :func:`merge_into`: insert-only MERGE on the table's key
makes reruns idempotent (the same input adds no rows), and every commit carries the run's
``userMetadata`` (run id, job, config hash) so ``DESCRIBE HISTORY`` says which run made it.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ptdm_spark.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
DATASET_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check_dataset_name(name: str) -> str:
    """Dataset names become catalog databases: lower-case letters, digits and underscores."""
    if not DATASET_RE.match(name or ""):
        raise UsageError(
            f"--dataset {name!r}: use lower-case letters, digits and underscores, starting with a letter"
        )
    return name


def is_delta_table(spark: "SparkSession", path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def table_version(spark: "SparkSession", path: str) -> int | None:
    """The current version of the table at ``path``, or None when there is no table yet: the
    newest commit file in its ``_delta_log`` (a listing, no Spark job)."""
    versions = _log_versions(spark, path)
    return versions[-1] if versions else None


_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


def _log_versions(spark: "SparkSession", path: str) -> list[int]:
    """The versions of the commit files in ``path/_delta_log``, ascending (empty: no table)."""
    import os

    local = local_table_path(path)
    if local is not None:
        try:
            names = os.listdir(os.path.join(local, "_delta_log"))
        except (FileNotFoundError, NotADirectoryError):
            return []
    else:
        from ptdm_spark.io import sources

        fs, log = sources.hadoop_fs(spark, f"{path.rstrip('/')}/_delta_log")
        if not fs.exists(log):
            return []
        names = [st.getPath().getName() for st in fs.listStatus(log)]
    return sorted(int(m.group(1)) for m in map(_COMMIT_FILE.match, names) if m)


def local_table_path(path: str) -> str | None:
    """The local file path of the table ``path`` (a plain path or ``file:`` URI, not
    percent-encoded: see ``LakehouseConfig.root_uri``), None for other schemes."""
    from ptdm_spark.io import listing

    if listing.is_local(path):
        return listing.local_path(path)
    return None if "://" in path else path


def _commit_info(spark: "SparkSession", path: str, version: int) -> dict:
    """The ``commitInfo`` action of commit ``version`` (empty when it has none)."""
    name = f"{path.rstrip('/')}/_delta_log/{version:020d}.json"
    local = local_table_path(name)
    if local is not None:
        with open(local, encoding="utf-8") as fh:
            text = fh.read()
    else:
        from ptdm_spark.io import sources

        fs, p = sources.hadoop_fs(spark, name)
        stream = fs.open(p)
        try:
            text = spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
        finally:
            stream.close()
    for line in text.splitlines():
        if line.startswith('{"commitInfo"'):
            return json.loads(line)["commitInfo"]
    for line in text.splitlines():  # a writer that put another action first
        action = json.loads(line) if line.strip() else {}
        if "commitInfo" in action:
            return action["commitInfo"]
    return {}


@contextlib.contextmanager
def session_conf(spark: "SparkSession", settings: Mapping[str, str]) -> Iterator[None]:
    """Set these session settings for the block only; each one's previous value (or its absence)
    comes back afterwards, also when the block raises."""
    previous = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in previous.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def commit_metadata(spark: "SparkSession", meta: Mapping[str, str]) -> contextlib.AbstractContextManager[None]:
    """Stamp every Delta commit made inside the block with ``meta`` (as JSON userMetadata)."""
    return session_conf(spark, {_USER_METADATA: _stamp(meta)})


def _stamp(meta: Mapping[str, str]) -> str:
    """A commit's userMetadata: ``meta`` as JSON (Spark's commits and deltalake's alike)."""
    return json.dumps(dict(meta), sort_keys=True)


def merge_into(
    spark: "SparkSession",
    df: "DataFrame",
    path: str,
    keys: Sequence[str],
    *,
    update_when_changed: Sequence[str] = (),
    delete_missing: bool = False,
    delete_condition: str | None = None,
    partition_by: Sequence[str] = (),
) -> None:
    """Write ``df`` into the Delta table at ``path``, keyed by ``keys``.

    Rows whose key is not in the table are inserted; rows already there are left alone (so a
    rerun adds nothing), unless ``update_when_changed`` names columns whose change rewrites the
    row. With ``delete_missing`` the table becomes exactly ``df`` (rows absent from ``df`` are
    deleted; only those matching ``delete_condition``, over ``t.``, when given): for derived
    tables such as ``duplicates`` and ``curated``.

    The first write creates the table; the schema is ``df``'s.

    Concurrent writers: Delta commits optimistically, and a writer whose commit conflicts with
    one that landed first (two jobs merging into the same table, or creating it) gets a
    concurrent-modification error. Every write here is keyed, so it is simply run again on the
    new snapshot: rows the other writer added are matched, not doubled.
    """
    _retrying(path, lambda: _merge_once(spark, df, path, keys, update_when_changed, delete_missing,
                                        delete_condition, partition_by))


def _retrying(path: str, write) -> None:
    """Run ``write()``; when a concurrent commit landed first, run it again on the new snapshot
    after a short random wait (every write here is keyed or replaces a slice, so a rerun is safe)."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            write()
            return
        except (*_CONCURRENT, _CreatedMeanwhile) as exc:
            if attempt == _ATTEMPTS:
                raise
            wait = random.uniform(0.5, 2.0) * attempt
            print(f"[delta] {path}: a concurrent commit landed first ({type(exc).__name__}); "
                  f"retrying in {wait:.1f}s ({attempt}/{_ATTEMPTS - 1})", file=sys.stderr, flush=True)
            time.sleep(wait)


_ATTEMPTS = 6


class _CreatedMeanwhile(Exception):
    """Another writer created the table between our check and our first write."""


def _concurrent_errors() -> tuple[type[BaseException], ...]:
    from delta.exceptions import base

    return (base.DeltaConcurrentModificationException, base.ConcurrentWriteException, base.MetadataChangedException,
            base.ProtocolChangedException, base.ConcurrentAppendException, base.ConcurrentDeleteReadException,
            base.ConcurrentDeleteDeleteException, base.ConcurrentTransactionException)


_CONCURRENT = _concurrent_errors()


def _merge_once(spark, df, path, keys, update_when_changed, delete_missing, delete_condition, partition_by) -> None:
    from delta.tables import DeltaTable

    if not is_delta_table(spark, path):
        # "error", not "append": when another writer creates the table after our check, an append
        # would land as a blind append on top of its rows (keys doubled); "error" fails instead,
        # and the retry merges.
        writer = df.write.format("delta").mode("error")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        try:
            writer.save(path)
        except _CONCURRENT:
            raise
        except Exception as exc:
            if is_delta_table(spark, path):
                raise _CreatedMeanwhile(str(exc).splitlines()[0][:200]) from exc
            raise
        return
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in keys)
    # Schema evolution: a table written by an older ptdm gains the columns added since.
    merge = DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), cond).withSchemaEvolution()
    if update_when_changed:
        changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in update_when_changed)
        merge = merge.whenMatchedUpdateAll(condition=changed)
    merge = merge.whenNotMatchedInsertAll()
    if delete_missing:
        merge = merge.whenNotMatchedBySourceDelete(condition=delete_condition)
    merge.execute()


def replace_slice(spark: "SparkSession", df: "DataFrame", path: str, condition: str) -> None:
    """Make the rows of ``path`` matching ``condition`` (a SQL predicate over its columns) exactly
    ``df`` in one commit (Delta's ``replaceWhere``; every row of ``df`` must match it), leaving the
    other rows alone. One write job instead of a keyed MERGE's several, for derived slices that
    are recomputed whole (an analysis of one curated version). The first write creates the table;
    columns added since an older ptdm wrote it are merged into its schema. A concurrent commit that
    touched the same slice is retried on the new snapshot, as :func:`merge_into` does."""
    _retrying(path, lambda: df.write.format("delta").mode("overwrite").option("replaceWhere", condition)
              .option("mergeSchema", "true").save(path))


def overwrite(spark: "SparkSession", df: "DataFrame", path: str) -> None:
    """Make the table at ``path`` exactly ``df`` in one commit: for small derived tables that are
    recomputed whole every run (duplicates, label_conflicts, leakage). One write job, where a
    keyed MERGE with deletes runs several and reads the table first. The first write creates
    the table; columns added since an older ptdm wrote it are merged into its schema; a
    concurrent commit is retried on the new snapshot (the result is the same ``df``)."""
    _retrying(path, lambda: df.write.format("delta").mode("overwrite").option("mergeSchema", "true").save(path))


def append(spark: "SparkSession", df: "DataFrame", path: str) -> None:
    """Plain append, for rows whose key cannot be in the table yet (a new run's ``runs`` row): one
    write job, no scan. The first append creates the table; columns added since an older ptdm
    wrote it are merged into its schema. Two writers creating the table at once: the loser
    retries and appends on top."""
    _retrying(path, lambda: df.write.format("delta").mode("append").option("mergeSchema", "true").save(path))


def write_rows_natively(path: str, rows: Sequence[Mapping], schema, meta: Mapping[str, str],
                        replace_where: str | None = None) -> bool:
    """Write a handful of ``rows`` (dicts with the columns of the Spark ``schema``) into the local
    Delta table at ``path`` with deltalake (Rust, in this process): appended, or replacing the rows
    that match ``replace_where`` in one commit. The commit carries ``meta`` as its userMetadata,
    as :func:`commit_metadata` stamps Spark's commits. ~20 ms, where Spark's write is 0.5–2 s
    warm and 5–7 s as a cold JVM's first Delta write (benchmarks/README, round 2, part 3).

    Returns False when the caller must write with Spark instead: a non-local path, or anything
    deltalake refuses (a schema that differs from the table's, as when an older ptdm made the
    table: Spark merges it; a table feature it cannot write; a concurrent commit it could not
    resolve), said in one line on stderr. An error raised after deltalake's commit landed (its
    post-commit checkpoint, say) is not a refusal: a commit newer than the table's version before
    the write, stamped with ``meta``, means written. A new table is created with every column
    nullable, as Spark creates one."""
    local = local_table_path(path)
    if local is None:
        return False
    before = _log_versions(None, path)  # local: no Spark needed
    try:
        import pyarrow as pa
        from deltalake import CommitProperties, write_deltalake
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.sql.types import MapType, StructField, StructType

        nullable = StructType([StructField(f.name, f.dataType, True) for f in schema.fields])
        maps = [f.name for f in schema.fields if isinstance(f.dataType, MapType)]
        data = pa.Table.from_pylist(
            [{**r, **{m: None if r.get(m) is None else list(r[m].items()) for m in maps}} for r in rows],
            schema=to_arrow_schema(nullable, timezone="UTC"))
        stamp = CommitProperties(custom_metadata={"userMetadata": _stamp(meta)})
        if replace_where is None:
            write_deltalake(local, data, mode="append", commit_properties=stamp)
        else:
            write_deltalake(local, data, mode="overwrite", predicate=replace_where, commit_properties=stamp)
        return True
    except Exception as exc:  # noqa: BLE001 - deltalake's errors have no common base
        newer = [v for v in _log_versions(None, path) if not before or v > before[-1]]
        if any(_commit_info(None, path, v).get("userMetadata") == _stamp(meta) for v in newer):
            return True  # committed; what failed came after
        print(f"[delta] {path}: written with Spark instead of deltalake ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0][:160] if str(exc) else ''})", file=sys.stderr, flush=True)
        return False


# Reader features whose files Spark's plain Parquet reader reads as Delta's reader does.
_PLAIN_READER_FEATURES = frozenset({"timestampNtz"})
_GLOB = re.compile(r"[*?\[\]{}\\]")
# The data file names Spark and deltalake write: relative, nothing encoded, and not starting with
# "_" or "." (Spark's file index skips such files, even named one by one: rows would go missing).
_PART_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def read_natively(spark: "SparkSession", path: str, version: int) -> "DataFrame | None":
    """The local Delta table at ``path`` as it was at ``version``, read as the Parquet files that
    version holds: deltalake replays the log in this process and Spark's Parquet reader reads the
    files, with the table's schema (every column nullable, as Spark's Parquet reader has them;
    ptdm's tables are all nullable). A cold JVM's first query of a Delta table reconstructs its
    state in three small Spark jobs and plans through Delta's reader: opening seven tables and
    counting them took 8.9 s and 24.5 JVM CPU-s that way, 1.6 s and 10.3 CPU-s this way
    (benchmarks/README, sixth round). More than 32 files are listed by a Spark job, as Spark
    lists any such read.

    None when Delta's reader must read it: not a local path, a path Spark would glob, a table
    partitioned, with column mapping, or with any reader feature but ``timestampNtz`` (the
    deletion-vector feature even before a row is deleted), a data file name that is not a plain
    part file, a data file gone (vacuumed: Delta's reader then says so), or anything deltalake
    refuses. The caller keeps Spark's Delta reader for those, and for encrypted lakehouses
    (deltalake cannot open encrypted Parquet files: the caller checks)."""
    local = local_table_path(path)
    if local is None or _GLOB.search(local):
        return None
    try:
        from deltalake import DeltaTable
        from pyspark.sql.types import StructType

        t = DeltaTable(local, version=version)
        p = t.protocol()
        if p.min_reader_version > 1 and not set(p.reader_features or []) <= _PLAIN_READER_FEATURES:
            return None
        meta = t.metadata()
        if meta.partition_columns or (meta.configuration or {}).get("delta.columnMapping.mode", "none") != "none":
            return None
        schema = _nullable(StructType.fromJson(json.loads(t.schema().to_json())))
        names = t.get_add_actions(flatten=True).column("path").to_pylist()
    except Exception:  # noqa: BLE001 - deltalake's errors have no common base: Delta's reader then
        return None
    if not names:
        return spark.createDataFrame([], schema)
    if not all(_PART_FILE.match(n) for n in names):  # in a folder, or a name to decode: Delta's reader
        return None
    root = _file_uri(local)
    from pyspark.errors import AnalysisException

    try:
        return spark.read.schema(schema).option("basePath", root).parquet(*[f"{root}/{n}" for n in names])
    except AnalysisException:  # a file of that version gone: Delta's reader says which, and why
        return None


def _nullable(t):
    """``t`` with every field, element and value nullable and no field metadata."""
    from pyspark.sql.types import ArrayType, MapType, StructField, StructType

    if isinstance(t, StructType):
        return StructType([StructField(f.name, _nullable(f.dataType), True) for f in t.fields])
    if isinstance(t, ArrayType):
        return ArrayType(_nullable(t.elementType), True)
    if isinstance(t, MapType):
        return MapType(_nullable(t.keyType), _nullable(t.valueType), True)
    return t


def _file_uri(local: str) -> str:
    from pathlib import Path

    from ptdm_spark.config import file_uri

    return file_uri(Path(local))


def register(spark: "SparkSession", dataset: str, table: str, path: str) -> None:
    """Register ``dataset.table`` in the persistent catalog, pointing at ``path`` (idempotent)."""
    check_dataset_name(dataset)
    # The usual case: the metastore already knows the name. Asked for names only: tableExists would
    # load the Delta table, a Spark job when its newest commit has no checksum file (deltalake's).
    if spark.catalog.databaseExists(dataset) and any(
            r.tableName == table and not r.isTemporary for r in spark.sql(f"SHOW TABLES IN `{dataset}`").collect()):
        return
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{dataset}`")
    spark.sql(f"CREATE TABLE IF NOT EXISTS `{dataset}`.`{table}` USING DELTA LOCATION '{path}'")


def commit_of(spark: "SparkSession", path: str, run_id: str, look_back: int = 20) -> tuple[int | None, dict[str, int]]:
    """(version, operation metrics) of the newest commit stamped with ``run_id``; when the run made
    no commit (a write with nothing to change), the table's current version and no metrics.
    Concurrent writers' later commits are looked past. Read from the newest commit files of the
    table's log directly: Delta's history API would run a Spark job for it after every write."""
    versions = _log_versions(spark, path)
    if not versions:
        return None, {}
    for version in reversed(versions[-look_back:]):
        info = _commit_info(spark, path, version)
        try:
            meta = json.loads(info.get("userMetadata") or "{}")
        except ValueError:
            continue
        if isinstance(meta, dict) and meta.get("run_id") == run_id:
            return version, _ints(info.get("operationMetrics") or {})
    return versions[-1], {}


def _ints(metrics: Mapping[str, str]) -> dict[str, int]:
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = int(v)
        except (TypeError, ValueError):
            continue
    return out


def rows_inserted(metrics: Mapping[str, int]) -> int:
    """Rows a commit added: a MERGE's inserted rows, or all rows of a plain write."""
    return metrics.get("numTargetRowsInserted", metrics.get("numOutputRows", 0))
