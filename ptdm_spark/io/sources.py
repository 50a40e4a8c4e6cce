"""Readers per source kind, all ending in one DataFrame of source objects (``schemas.OBJECTS``).

A SOURCE argument is a folder, an archive, an IDX image file or a CIFAR batch, on local disk or
any Hadoop filesystem (``hdfs://...``). The driver lists every source itself
(:mod:`ptdm_spark.io.listing`: hidden names and any character included, links followed, loops
cut); what the listing finds is sorted by kind:

* files to read: every file that is not an archive or array file (``ingest.extensions``, when
  set, narrows this by extension), read on the workers, small files packed into few partitions;
  the content decides later whether they are images;
* archives, IDX files and CIFAR batches are expanded on the workers (``udfs``);
* what cannot or must not be read (too large, skipped by the filter, dangling links, link loops,
  folders that cannot be listed) becomes an error object (a ``rejects`` row), so that every
  entry found is accounted for.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ptdm_spark import schemas, udfs
from ptdm_spark.config import IngestConfig
from ptdm_spark.errors import UsageError
from ptdm_spark.imaging import reasons
from ptdm_spark.io import arrays, listing

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass(frozen=True)
class Source:
    uri: str  # fully qualified (file:/..., hdfs://...)
    is_dir: bool


URI_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(source: str) -> bool:
    """``hdfs://...``, ``file://...``: anything else is a local path."""
    return bool(URI_RE.match(source))


def hadoop_fs(spark: "SparkSession", uri: str):
    """(Hadoop FileSystem, Path) for ``uri``, through the session's JVM and Hadoop conf."""
    path = spark._jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark._jsc.hadoopConfiguration()), path



def check_manifest_file(path: str) -> None:
    """A local manifest path must name a file (one line, before any Spark work); URIs are checked
    when read."""
    import os

    if "://" not in path and not os.path.isfile(os.path.abspath(path)):
        raise UsageError(f"--labels {path}: no such manifest file (or use dirname / none)")


def resolve(spark: "SparkSession", sources: list[str]) -> list[Source]:
    """Check every SOURCE exists and qualify it. Raises UsageError naming the first missing one."""
    import os

    out = []
    for s in sources:
        uri = s if is_uri(s) else os.path.abspath(os.path.expanduser(s))
        try:
            fs, path = hadoop_fs(spark, uri)
            exists = fs.exists(path)
        except Exception as exc:  # py4j wraps the JVM's IOException / IllegalArgumentException
            raise UsageError(f"cannot open source {s}: {str(exc).splitlines()[0][:200]}") from None
        if not exists:
            raise UsageError(f"no such source: {s}")
        status = fs.getFileStatus(path)
        out.append(Source(fs.makeQualified(path).toString(), status.isDirectory()))
    return out


# --- classification of listed files ------------------------------------------------------------

IDX_LABELS_RE = re.compile(r"-labels[-.]idx1-ubyte(\.gz)?$")
CIFAR_META = ("batches.meta", "meta")


def kind_of(name: str, cfg: IngestConfig) -> str:
    """image | archive | idx | idx_labels | cifar | cifar_meta | other, from a file name."""
    low = name.lower()
    if arrays.IDX_IMAGES_RE.match(low):
        return "idx"
    if IDX_LABELS_RE.search(low):
        return "idx_labels"
    if low in CIFAR_META:
        return "cifar_meta"
    if arrays.CIFAR_RE.match(low):
        return "cifar"
    for ext in sorted(cfg.archive_extensions, key=len, reverse=True):
        if low.endswith("." + ext.lower()):
            return "archive"
    if not cfg.extensions:  # no filter: the content decides
        return "image"
    ext = posixpath.splitext(low)[1].lstrip(".")
    return "image" if ext in {e.lower() for e in cfg.extensions} else "other"


def idx_labels_path(images_path: str) -> str:
    return re.sub(r"-images([-.])idx3-ubyte", r"-labels\1idx1-ubyte", images_path)


def _escape_glob(uri: str) -> str:
    """``uri`` with Hadoop's glob characters escaped, so that Spark reads exactly that file."""
    return re.sub(r"([\\*?\[\]{}])", r"\\\1", uri)


def _binary(spark: "SparkSession", paths: list[str] | str, cfg: IngestConfig):
    """Spark's ``binaryFile`` scan of exact file URIs (non-local filesystems only)."""
    paths = [paths] if isinstance(paths, str) else paths
    return (
        spark.read.format("binaryFile")
        .option("ignoreMissingFiles", "true")  # vanished / unreadable: found later as 'unreadable'
        .option("ignoreCorruptFiles", "true")
        .load([_escape_glob(p) for p in paths])
    )


@dataclass
class Read:
    """What ingest reads, in three parts, so that image bytes are read once, by the table write:

    * ``files``: image files, their bytes read when consumed (lazy);
    * ``others``: every other object (archive members, IDX / CIFAR images, and the error objects
      of what cannot be read: skipped, too large, dangling links, loops), staged when it holds
      expanded objects;
    * ``expected``: the path of every file to be read (a file that yields no row anywhere could
      not be read: ``unreadable``).
    ``listed`` counts what the walk found, the number the accounting starts from.
    """

    files: "DataFrame"
    others: "DataFrame"
    expected: "DataFrame"
    listed: int = 0

    @property
    def keys(self) -> "DataFrame":
        """(source_uri, rel_path) of every readable object, without reading a byte."""
        from pyspark.sql import functions as F

        return self.expected_keys.unionByName(
            self.others.filter(F.col("error_reason").isNull()).select("source_uri", "rel_path"))

    expected_keys: "DataFrame | None" = None
    unaccounted: "Callable[[], list[str]] | None" = None


Stage = Callable[["DataFrame", str], "DataFrame"]

_ENTRY_SCHEMA = ("path string, root string, rel_path string, length long, mtime long, kind string, "
                 "reason string, detail string")


def list_sources(spark: "SparkSession", sources: list[Source], cfg: IngestConfig) -> list[listing.Entry]:
    """Every entry under every source (driver side; see :mod:`ptdm_spark.io.listing`)."""
    out: list[listing.Entry] = []
    for src in sources:
        if listing.is_local(src.uri):
            out.extend(listing.walk_local(listing.local_path(src.uri), cfg.skip_hidden))
        else:
            out.extend(listing.walk_hadoop(spark, src.uri, cfg.skip_hidden))
    return out


def _classify(e: listing.Entry, cfg: IngestConfig) -> tuple[str, str | None, str | None]:
    """(kind, reason, detail) of a listed entry."""
    if e.reason:
        return "problem", e.reason, e.detail
    kind = kind_of(e.name, cfg)
    if kind == "other":
        return kind, reasons.SKIPPED, "left out by ingest.extensions"
    if kind == "image" and e.length > cfg.max_bytes:
        return kind, reasons.TOO_LARGE, f"{e.length} bytes exceeds ingest.max_bytes={cfg.max_bytes}"
    return kind, None, None


def read_objects(spark: "SparkSession", sources: list[Source], cfg: IngestConfig, labels: str, stage: Stage) -> Read:
    """All source objects of ``sources`` (``schemas.OBJECTS``). ``stage(df, name)`` writes a
    small intermediate once and returns it read back.

    The driver lists every source (hidden names, any character, links followed with loops cut),
    sorts the entries by kind, and hands the image files to the workers in partitions of about
    ``ingest.max_partition_bytes`` (each file counted at least ``ingest.open_cost_bytes``): local
    files are read by the Python workers, files on other filesystems by Spark's ``binaryFile``
    scan of their exact paths (a hidden name there, which that scan never returns, through the
    driver's filesystem client).
    """
    from pyspark.sql import functions as F

    dirname = labels == "dirname"
    entries = list_sources(spark, sources, cfg)
    rows, side_files = [], []
    for e in entries:
        kind, reason, detail = _classify(e, cfg)
        if reason is None and kind not in ("image",):
            side_files.append((e.uri, kind, e.length, e.mtime_ms))
            continue
        rows.append((e.uri, e.root, e.rel_path, e.length, e.mtime_ms, kind, reason, detail))
    listed = spark.createDataFrame(rows, _ENTRY_SCHEMA) if rows else spark.createDataFrame([], _ENTRY_SCHEMA)
    listed = stage(listed, "listing")
    errors = _errors_from_listing(listed.filter(F.col("reason").isNotNull()), dirname)
    todo = listed.filter(F.col("reason").isNull())
    images = [r for r in rows if r[6] is None]
    files = _read_files(spark, todo, images, cfg, dirname)
    side = _side_objects(spark, side_files, cfg, labels)
    others = _union(spark, [errors] + side, schemas.OBJECTS)
    # Expanding archives and arrays is work: done once. The rest comes from the staged listing.
    others = stage(others, "others") if side else others
    return Read(files=files, others=others, expected=todo.select("path"), listed=len(entries),
                expected_keys=todo.select(F.col("path").alias("source_uri"), "rel_path"),
                unaccounted=lambda: _unaccounted(spark, side_files, others))


def _unaccounted(spark: "SparkSession", side_files: list[tuple], others: "DataFrame") -> list[str]:
    """Listed archives and array files that yielded no object at all (each should yield its
    members, or one error record). Every other listed entry is one object by construction; label
    files of IDX / CIFAR sources are read as labels, not objects."""
    from pyspark.sql import functions as F

    expanded = [(u,) for u, k, _, _ in side_files if k in ("archive", "idx", "cifar")]
    if not expanded:
        return []
    entries = spark.createDataFrame(expanded, "entry string")
    uri = F.col("source_uri")
    hit = (uri == F.col("entry")) | uri.startswith(F.concat(F.col("entry"), F.lit("!/"))) | \
        uri.startswith(F.concat(F.col("entry"), F.lit("#")))
    return [r.entry for r in entries.join(others.select("source_uri"), hit, "left_anti").collect()]


def _pack(sizes: list[int], target: int, open_cost: int, cores: int) -> list[int]:
    """Partition index per file: consecutive files packed up to ``target`` bytes (a file counts
    at least ``open_cost``), and at least as many partitions as cores when there is work."""
    total = sum(max(s, open_cost) for s in sizes)
    target = max(1, min(target, -(-total // max(1, cores))))
    out, part, filled = [], 0, 0
    for s in sizes:
        cost = max(s, open_cost)
        if filled and filled + cost > target:
            part, filled = part + 1, 0
        out.append(part)
        filled += cost
    return out


def _read_files(spark: "SparkSession", todo: "DataFrame", images: list[tuple], cfg: IngestConfig,
                dirname: bool) -> "DataFrame":
    from pyspark.sql import functions as F

    meta = todo.select("path", "rel_path", "length", "mtime")
    contents = _contents(spark, [(r[0], r[3]) for r in images], cfg, meta)
    return _image_objects(contents.withColumn("modificationTime", (F.col("mtime").cast("double") / 1000)
                                              .cast("timestamp")), dirname)


def _contents(spark: "SparkSession", files: list[tuple[str, int]], cfg: IngestConfig,
              meta: "DataFrame | None" = None) -> "DataFrame":
    """(path, content, ...) of ``files`` [(uri, length)], read on the workers; ``meta`` (keyed by
    path) supplies extra columns (its rows travel with the path, no join after the read).

    Local files are read by the Python workers in partitions packed by size; on other filesystems
    by Spark's ``binaryFile`` scan of the exact paths, and a name that scan never returns (a
    leading ``_`` or ``.``) through the driver's Hadoop client."""

    if meta is None:
        meta = spark.createDataFrame([(p,) for p, _ in files] or [], "path string")
    cols = meta.columns
    schema = ", ".join([f"{f.name} {f.dataType.simpleString()}" for f in meta.schema.fields] + ["content binary"])
    local = [(p, n) for p, n in files if listing.is_local(p)]
    remote = [p for p, n in files if not listing.is_local(p) and n > 0]
    empty = [p for p, n in files if not listing.is_local(p) and n == 0]  # Spark's file scans skip these
    parts: list[DataFrame] = []
    if local:
        index = _pack([n for _, n in local], cfg.max_partition_bytes, cfg.open_cost_bytes,
                      spark.sparkContext.defaultParallelism)
        tagged = spark.createDataFrame([(p, i) for (p, _), i in zip(local, index)], "path string, part int")
        df = meta.join(tagged, "path").repartitionByRange(index[-1] + 1, "part", "path").select(*cols)
        parts.append(df.mapInPandas(udfs.read_local_files(cfg.max_partition_bytes), schema))
    if remote:
        hidden = [p for p in remote if p.rsplit("/", 1)[-1][:1] in ("_", ".")]
        visible = sorted(set(remote) - set(hidden))
        if visible:
            scan = _binary(spark, visible, cfg).select("path", "content")
            parts.append(meta.join(scan, "path").select(*cols, "content"))
        if hidden:  # Spark's file index drops these names even when asked for them by path
            got = spark.createDataFrame([(p, bytearray(read_hadoop(spark, p))) for p in hidden],
                                        "path string, content binary")
            parts.append(meta.join(got, "path").select(*cols, "content"))
    if empty:
        got = spark.createDataFrame([(p, bytearray()) for p in empty], "path string, content binary")
        parts.append(meta.join(got, "path").select(*cols, "content"))
    out = spark.createDataFrame([], schema)
    for p in parts:
        out = out.unionByName(p)
    return out


def read_entries(spark: "SparkSession", entries: list[listing.Entry], cfg: IngestConfig, dirname: bool) -> "DataFrame":
    """Listed image files as objects (``schemas.OBJECTS``), read as ingest reads them (any name)."""
    from pyspark.sql import functions as F

    rows = [(e.uri, e.rel_path, e.length, e.mtime_ms) for e in entries]
    meta = spark.createDataFrame(rows, "path string, rel_path string, length long, mtime long")
    contents = _contents(spark, [(e.uri, e.length) for e in entries], cfg, meta)
    return _image_objects(contents.withColumn("modificationTime", (F.col("mtime").cast("double") / 1000)
                                              .cast("timestamp")), dirname)


def read_small(spark: "SparkSession", uri: str) -> bytes:
    """One small file's bytes, on the driver (labels files, CIFAR's meta)."""
    return listing.read_local(uri) if listing.is_local(uri) else read_hadoop(spark, uri)


def read_hadoop(spark: "SparkSession", uri: str) -> bytes:
    """The bytes of one file through the driver's Hadoop client (small files only)."""
    fs, path = hadoop_fs(spark, uri)
    stream = fs.open(path)
    try:
        return bytes(spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
    finally:
        stream.close()


def _union(spark: "SparkSession", parts: list["DataFrame"], schema) -> "DataFrame":
    out = spark.createDataFrame([], schema)
    for p in parts:
        out = out.unionByName(p)
    return out


def _parent_name(col):
    from pyspark.sql import functions as F

    return F.element_at(F.split(F.col(col), "/"), -2)


def _image_objects(df: "DataFrame", dirname: bool) -> "DataFrame":
    from pyspark.sql import functions as F

    out = df.select(
        F.col("path").alias("source_uri"),
        F.lit("file").alias("source_format"),
        F.col("content"),
        F.length("content").cast("long").alias("size_bytes"),
        (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"),
        F.col("rel_path"),
        F.col("modificationTime").alias("source_modified_at"),
        F.lit(None).cast("string").alias("error_reason"),
        F.lit(None).cast("string").alias("error_detail"),
    )
    return schemas.conform(out, schemas.OBJECTS)


def _errors_from_listing(bad: "DataFrame", dirname: bool) -> "DataFrame":
    from pyspark.sql import functions as F

    out = bad.select(
        F.col("path").alias("source_uri"),
        F.lit("file").alias("source_format"),
        F.lit(None).cast("binary").alias("content"),
        F.col("length").alias("size_bytes"),
        (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"),
        F.col("rel_path"),
        (F.col("mtime").cast("double") / 1000).cast("timestamp").alias("source_modified_at"),
        F.col("reason").alias("error_reason"),
        F.col("detail").alias("error_detail"),
    )
    return schemas.conform(out, schemas.OBJECTS)


def _side_objects(spark: "SparkSession", side_files: list[tuple[str, str, int, int | None]], cfg: IngestConfig,
                  labels: str) -> list["DataFrame"]:
    """Archives, IDX files and CIFAR batches: expanded on the workers."""
    from pyspark.sql import functions as F

    out = []
    dirname = labels == "dirname"
    archives = [(p, n) for p, k, n, _ in side_files if k == "archive"]
    if archives:
        meta = spark.createDataFrame([(p,) for p, _ in archives], "path string").select(
            "path", (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"))
        df = _contents(spark, archives, cfg, meta).select("path", "content", "label")
        out.append(df.mapInPandas(udfs.expand_archives(cfg.extensions, cfg.max_bytes, dirname),
                                  schemas.OBJECTS))
    idx = [p for p, k, _, _ in side_files if k == "idx"]
    cifar = [p for p, k, _, _ in side_files if k == "cifar"]
    if idx or cifar:
        label_paths = {p for p, k, _, _ in side_files if k == "idx_labels"}
        wanted = {p: idx_labels_path(p) for p in idx}
        found = [q for q in wanted.values() if q in label_paths or _exists(spark, q)]
        small = {q: read_small(spark, q) for q in found}
        labels_by_path = {p: small.get(q) for p, q in wanted.items()}
        names = tuple(cfg.label_names)
        if cifar and not names:
            names = _cifar_names(spark, cifar, side_files, cfg)
        info = {p: (k, n, t) for p, k, n, t in side_files}
        meta = spark.createDataFrame([(p, info[p][0], info[p][2]) for p in idx + cifar],
                                     "path string, kind string, mtime long")
        meta = meta.select("path", "kind", (F.col("mtime").cast("double") / 1000).cast("timestamp")
                           .alias("modificationTime"))
        df = _contents(spark, [(p, info[p][1]) for p in idx + cifar], cfg, meta).select(
            "path", "content", "modificationTime", "kind")
        df = df.repartition(max(1, len(idx + cifar)))
        out.append(df.mapInPandas(udfs.expand_arrays(labels_by_path, names, labels != "none"), schemas.OBJECTS))
    return out


def _exists(spark: "SparkSession", uri: str) -> bool:
    fs, path = hadoop_fs(spark, uri)
    return bool(fs.exists(path))


def _cifar_names(spark, cifar: list[str], side_files, cfg: IngestConfig) -> tuple[str, ...]:
    metas = {p for p, k, _, _ in side_files if k == "cifar_meta"}
    for c in cifar:
        for m in CIFAR_META:
            cand = posixpath.join(posixpath.dirname(c), m)
            if cand in metas or _exists(spark, cand):
                try:
                    return tuple(arrays.cifar_label_names(read_small(spark, cand)))
                except arrays.ArrayFormatError:
                    return ()
    return ()


def read_tabular(spark: "SparkSession", path: str, what: str) -> "DataFrame":
    """A table in a file, by its extension: CSV with a header (RFC 4180: fields in double quotes
    may hold commas, line breaks and doubled quotes), JSON lines, or Parquet (a file or a folder).
    ``what`` starts the one-line error for any other extension."""
    import os

    low = path.lower().rstrip("/")
    local = path if "://" in path else os.path.abspath(path)
    if low.endswith(".csv"):
        return (spark.read.option("header", "true").option("quote", '"').option("escape", '"')
                .option("multiLine", "true").option("mode", "FAILFAST").csv(_escape_glob(local)))
    if low.endswith((".jsonl", ".json", ".ndjson")):
        return spark.read.json(_escape_glob(local))
    if low.endswith(".parquet"):
        return spark.read.parquet(_escape_glob(local))
    raise UsageError(f"{what} must be .csv, .jsonl (JSON lines) or .parquet")


def read_manifest(spark: "SparkSession", path: str) -> "DataFrame":
    """A manifest (csv with header, jsonl, parquet) with columns ``path`` and ``label`` (and an
    optional ``split``). CSV is read by RFC 4180: fields in double quotes may hold commas, line
    breaks and doubled quotes (a quote inside a quoted field is written twice). A column of the wrong type (a label that is a
    list, a path that is a number) stops with one line instead of turning into NULL labels."""

    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    check_manifest_file(path)
    df = read_tabular(spark, path, f"--labels {path}: a manifest")
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        raise UsageError(f"--labels {path}: the manifest has no column {missing[0]!r} (needs path and label)")
    scalar = (T.StringType, T.IntegerType, T.LongType, T.ShortType, T.ByteType)
    for col, allowed in (("path", (T.StringType,)), ("label", scalar), ("split", (T.StringType,))):
        if col in df.columns and not isinstance(df.schema[col].dataType, allowed):
            raise UsageError(f"--labels {path}: column {col!r} is {df.schema[col].dataType.simpleString()}, "
                             f"expected {'a string' if col != 'label' else 'a string or an integer'}")
    split = F.col("split").cast("string") if "split" in df.columns else F.lit(None).cast("string")
    return df.select(F.regexp_replace(F.col("path").cast("string"), r"^\./", "").alias("m_path"),
                     F.col("label").cast("string").alias("m_label"), split.alias("m_split"))


def _manifest_keys(manifest: "DataFrame") -> "DataFrame":
    """One row per manifest path: a path listed twice with different labels takes the smallest
    label (deterministic; reported as a conflict)."""
    from pyspark.sql import functions as F

    return manifest.groupBy("m_path").agg(F.min("m_label").alias("m_label"), F.min("m_split").alias("m_split"))


def _match(objects: "DataFrame", m: "DataFrame") -> "DataFrame":
    """``objects`` (with source_uri, rel_path) left-joined to the manifest rows that name them:
    by the path below the source root, or the full URI / local path."""
    from pyspark.sql import functions as F

    by_rel = m.select(F.col("m_path").alias("k_rel"), F.col("m_label").alias("label_rel"),
                      F.col("m_split").alias("split_rel"))
    by_abs = m.select(F.col("m_path").alias("k_abs"), F.col("m_label").alias("label_abs"),
                      F.col("m_split").alias("split_abs"))
    plain = F.regexp_replace("source_uri", r"^file:(//)?", "")
    return (objects.join(F.broadcast(by_rel), objects.rel_path == by_rel.k_rel, "left")
            .join(F.broadcast(by_abs), (objects.source_uri == by_abs.k_abs) | (plain == by_abs.k_abs), "left"))


def apply_manifest(objects: "DataFrame", manifest: "DataFrame") -> "DataFrame":
    """Label objects from the manifest: its ``path`` matches ``rel_path``, or the full URI / path.
    Its optional ``split`` column becomes the objects' ``source_split`` (an extra column)."""
    from pyspark.sql import functions as F

    out = (_match(objects, _manifest_keys(manifest))
           .withColumn("label", F.coalesce("label_rel", "label_abs"))
           .withColumn("source_split", F.lower(F.coalesce("split_rel", "split_abs"))))
    return out.select(*schemas.OBJECTS.fieldNames(), "source_split")


def labels_that_differ(keys: "DataFrame", manifest: "DataFrame", stored: "DataFrame") -> int:
    """How many objects (``keys``: source_uri, rel_path) are stored (``stored``: source_uri, label)
    with another label than the manifest gives them (a rerun with a corrected manifest: ingest
    never rewrites a stored row)."""
    from pyspark.sql import functions as F

    wanted = (_match(keys, _manifest_keys(manifest))
              .select("source_uri", F.coalesce("label_rel", "label_abs").alias("wanted"))
              .filter(F.col("wanted").isNotNull()))
    return stored.join(wanted, "source_uri").filter(~F.col("label").eqNullSafe(F.col("wanted"))).count()


@dataclass(frozen=True)
class ManifestReport:
    """How a manifest met the objects it labels."""

    rows: int
    paths: int
    matched: int  # manifest paths that name an object
    unmatched: int
    unmatched_examples: list[str]
    conflicting: int  # paths listed more than once with different labels
    conflicting_examples: list[str]
    objects: int  # objects the run read (files, archive members, array images)
    unlabelled: int  # of those, named by no manifest row


def manifest_report(keys: "DataFrame", manifest: "DataFrame") -> ManifestReport:
    """Counts of :class:`ManifestReport` from the objects' keys (source_uri, rel_path; no bytes)."""
    from pyspark.sql import functions as F

    m = _manifest_keys(manifest)
    hits = _match(keys, m).withColumn("hit", F.coalesce("k_rel", "k_abs"))
    found = hits.filter(F.col("hit").isNotNull()).select(F.col("hit").alias("m_path")).distinct()
    unmatched = m.join(found, "m_path", "left_anti").select("m_path")
    conflicts = (manifest.groupBy("m_path").agg(F.count_distinct("m_label").alias("n")).filter("n > 1")
                 .select("m_path"))
    stats = hits.agg(F.count(F.lit(1)).alias("objects"),
                     F.sum(F.when(F.col("hit").isNull(), 1).otherwise(0)).alias("unlabelled")).first()
    n_unmatched, n_conflicts = unmatched.count(), conflicts.count()
    n_paths = m.count()
    return ManifestReport(
        rows=manifest.count(), paths=n_paths, matched=n_paths - n_unmatched, unmatched=n_unmatched,
        unmatched_examples=sorted(r.m_path for r in unmatched.limit(3).collect()),
        conflicting=n_conflicts, conflicting_examples=sorted(r.m_path for r in conflicts.limit(3).collect()),
        objects=int(stats["objects"] or 0), unlabelled=int(stats["unlabelled"] or 0))
