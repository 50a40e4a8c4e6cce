"""Readers per source kind, all ending in one DataFrame of source objects (``schemas.OBJECTS``).

A SOURCE argument is a folder, an archive, an IDX image file or a CIFAR batch, on local disk or
any Hadoop filesystem (``hdfs://...``). Folders are listed once with Spark's ``binaryFile``
source; what the listing finds is sorted by kind:

* images (``ingest.extensions``) are read by ``binaryFile`` itself, small files packed into few
  partitions;
* archives, IDX files and CIFAR batches are expanded on the workers (``udfs``);
* anything else, and anything bigger than ``ingest.max_bytes``, becomes an error object (a
  ``rejects`` row), so that every file found is accounted for.
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
from ptdm_spark.io import arrays

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
    ext = posixpath.splitext(low)[1].lstrip(".")
    return "image" if ext in cfg.extensions else "other"


def kind_column(path_col: str, cfg: IngestConfig):
    """:func:`kind_of` as a Spark expression (no Python UDF per listed file)."""
    from pyspark.sql import functions as F

    name = F.lower(F.element_at(F.split(F.col(path_col), "/"), -1))
    ext = F.regexp_extract(name, r"\.([^.]+)$", 1)
    archive = None
    for e in cfg.archive_extensions:
        cond = name.endswith("." + e.lower())
        archive = cond if archive is None else (archive | cond)
    return (
        F.when(name.rlike(arrays.IDX_IMAGES_RE.pattern), "idx")
        .when(name.rlike(IDX_LABELS_RE.pattern), "idx_labels")
        .when(name.isin(*CIFAR_META), "cifar_meta")
        .when(name.rlike(arrays.CIFAR_RE.pattern), "cifar")
        .when(archive if archive is not None else F.lit(False), "archive")
        .when(ext.isin(*[e.lower() for e in cfg.extensions]), "image")
        .otherwise("other")
    )


def idx_labels_path(images_path: str) -> str:
    return re.sub(r"-images([-.])idx3-ubyte", r"-labels\1idx1-ubyte", images_path)


def _glob(extensions: tuple[str, ...]) -> str:
    """``*.{[jJ][pP][gG],...}``: a case-insensitive pathGlobFilter for the extensions."""
    def ci(ext: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)
    return "*.{" + ",".join(ci(e) for e in extensions) + "}"


def _binary(spark: "SparkSession", paths: list[str] | str, cfg: IngestConfig, glob: str | None = None,
            recursive: bool = True):
    reader = (
        spark.read.format("binaryFile")
        .option("ignoreMissingFiles", "true")  # vanished / unreadable: found later as 'unreadable'
        .option("ignoreCorruptFiles", "true")
    )
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    if glob:
        reader = reader.option("pathGlobFilter", glob)
    return reader.load(paths)


@dataclass
class Read:
    """What ingest reads, in three parts, so that image bytes are read once, by the table write:

    * ``files``: image files, their bytes read by Spark's ``binaryFile`` scan when consumed (lazy);
    * ``others``: every other object (archive members, IDX / CIFAR images, and the error objects
      of files that cannot be images: unsupported, too large, empty), staged when it holds
      expanded objects;
    * ``expected``: the path of every image file the listing found within the byte limit (a
      file that yields no row anywhere could not be read: ``unreadable``).
    """

    files: "DataFrame"
    others: "DataFrame"
    expected: "DataFrame"


Stage = Callable[["DataFrame", str], "DataFrame"]


def read_objects(spark: "SparkSession", sources: list[Source], cfg: IngestConfig, labels: str, stage: Stage) -> Read:
    """All source objects of ``sources`` (``schemas.OBJECTS``). ``stage(df, name)`` writes a
    small intermediate once and returns it read back.

    A folder is listed once: the listing (path, length, time, kind; no bytes) is staged and every
    kind, the error objects, the empty files and the expected set come from it. Only the image
    files' bytes are read, by a second scan filtered by extension (a Spark file index lists the
    folder again, on the driver, which costs far less than a scan of every file's status).
    """
    from pyspark.sql import functions as F

    spark.conf.set("spark.sql.files.openCostInBytes", str(cfg.open_cost_bytes))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(cfg.max_partition_bytes))
    dirname = labels == "dirname"

    files: list[DataFrame] = []
    others: list[DataFrame] = []
    expected: list[DataFrame] = []
    side_files: list[tuple[str, str, int]] = []  # (path, kind, length) of non-image files found

    for i, src in enumerate(sources):
        root = src.uri.rstrip("/")
        if src.is_dir:
            scan = _binary(spark, root, cfg)
            listing = stage(scan.select("path", "length", "modificationTime").withColumn("kind", kind_column("path", cfg)),
                            f"listing-{i}")
            others.append(_empty_files(spark, scan, listing, root, dirname))
            side = listing.filter(~F.col("kind").isin("image", "other")).select("path", "kind", "length")
            side_files += [(r.path, r.kind, r.length) for r in side.collect()]
            bad = listing.filter(
                (F.col("kind") == "other") | ((F.col("kind") == "image") & (F.col("length") > cfg.max_bytes))
            )
            others.append(_errors_from_listing(bad, root, cfg, dirname))
            expected.append(listing.filter((F.col("kind") == "image") & (F.col("length") <= cfg.max_bytes))
                            .select("path"))
            images = _binary(spark, root, cfg, glob=_glob(cfg.extensions))
        else:
            kind = kind_of(posixpath.basename(root), cfg)
            if kind != "image":
                fs, path = hadoop_fs(spark, root)
                side_files.append((root, kind, fs.getFileStatus(path).getLen()))
                continue
            images = _binary(spark, root, cfg, recursive=False)
            expected.append(images.filter(F.col("length") <= cfg.max_bytes).select("path"))
            others.append(_errors_from_listing(
                images.select("path", "length", "modificationTime").filter(F.col("length") > cfg.max_bytes)
                .withColumn("kind", F.lit("image")), posixpath.dirname(root), cfg, dirname))
            root = posixpath.dirname(root)
        files.append(_image_objects(images.filter(F.col("length") <= cfg.max_bytes), root, dirname))

    side = _side_objects(spark, side_files, cfg, labels)
    others = _union(spark, others + side, schemas.OBJECTS)
    # Expanding archives and arrays is work: done once. The rest comes from the staged listings.
    return Read(files=_union(spark, files, schemas.OBJECTS), others=stage(others, "others") if side else others,
                expected=_union(spark, expected, "path string"))


def _union(spark: "SparkSession", parts: list["DataFrame"], schema) -> "DataFrame":
    out = spark.createDataFrame([], schema)
    for p in parts:
        out = out.unionByName(p)
    return out


def _empty_files(spark: "SparkSession", scan: "DataFrame", listing: "DataFrame", root: str,
                 dirname: bool) -> "DataFrame":
    """Zero-byte files: Spark's file scans skip them, its file index does not.

    They are real inputs (process rejects them as ``empty``), so they become objects with empty
    content. The index's paths are fetched only when its count differs from the scan's.
    """
    from pyspark.sql import functions as F

    files = scan._jdf.inputFiles()
    empty = spark.createDataFrame([], "path string")
    if len(files) != listing.count():
        # py4j cannot hand a String[] to any joining method; one call per element, only here.
        paths = [re.sub(r"^file:///", "file:/", p) for p in files]  # the scan's spelling of local URIs
        empty = (spark.createDataFrame([(p,) for p in paths], "path string")
                 .join(listing.select("path"), "path", "left_anti"))
    out = empty.select(
        F.col("path").alias("source_uri"),
        F.lit("file").alias("source_format"),
        F.lit(b"").cast("binary").alias("content"),
        F.lit(0).cast("long").alias("size_bytes"),
        (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"),
        _rel("path", root).alias("rel_path"),
        F.lit(None).cast("timestamp").alias("source_modified_at"),
        F.lit(None).cast("string").alias("error_reason"),
        F.lit(None).cast("string").alias("error_detail"),
    )
    return schemas.conform(out, schemas.OBJECTS)


def _rel(col, root: str):
    from pyspark.sql import functions as F

    prefix = root.rstrip("/") + "/"
    return F.when(F.col(col).startswith(prefix), F.expr(f"substring({col}, {len(prefix) + 1})")).otherwise(F.col(col))


def _parent_name(col):
    from pyspark.sql import functions as F

    return F.element_at(F.split(F.col(col), "/"), -2)


def _image_objects(df: "DataFrame", root: str, dirname: bool) -> "DataFrame":
    from pyspark.sql import functions as F

    out = df.select(
        F.col("path").alias("source_uri"),
        F.lit("file").alias("source_format"),
        F.col("content"),
        F.col("length").alias("size_bytes"),
        (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"),
        _rel("path", root).alias("rel_path"),
        F.col("modificationTime").alias("source_modified_at"),
        F.lit(None).cast("string").alias("error_reason"),
        F.lit(None).cast("string").alias("error_detail"),
    )
    return schemas.conform(out, schemas.OBJECTS)


def _errors_from_listing(bad: "DataFrame", root: str, cfg: IngestConfig, dirname: bool) -> "DataFrame":
    from pyspark.sql import functions as F

    too_large = (F.col("kind") == "image") & (F.col("length") > cfg.max_bytes)
    out = bad.select(
        F.col("path").alias("source_uri"),
        F.lit("file").alias("source_format"),
        F.lit(None).cast("binary").alias("content"),
        F.col("length").alias("size_bytes"),
        (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"),
        _rel("path", root).alias("rel_path"),
        F.col("modificationTime").alias("source_modified_at"),
        F.when(too_large, F.lit(reasons.TOO_LARGE)).otherwise(F.lit(reasons.UNSUPPORTED)).alias("error_reason"),
        F.when(too_large, F.concat(F.col("length").cast("string"), F.lit(f" bytes exceeds ingest.max_bytes={cfg.max_bytes}")))
        .otherwise(F.lit("not an image, archive or array file by its name (see ingest.extensions)"))
        .alias("error_detail"),
    )
    return schemas.conform(out, schemas.OBJECTS)


def _side_objects(spark: "SparkSession", side_files: list[tuple[str, str, int]], cfg: IngestConfig,
                  labels: str) -> list["DataFrame"]:
    """Archives, IDX files and CIFAR batches: expanded on the workers."""
    from pyspark.sql import functions as F

    out = []
    dirname = labels == "dirname"
    archives = [p for p, k, _ in side_files if k == "archive"]
    if archives:
        df = _binary(spark, archives, cfg, recursive=False).select(
            "path", "content", (_parent_name("path") if dirname else F.lit(None).cast("string")).alias("label"))
        out.append(df.mapInPandas(udfs.expand_archives(cfg.extensions, cfg.max_bytes, dirname),
                                  schemas.OBJECTS))
    idx = [p for p, k, _ in side_files if k == "idx"]
    cifar = [p for p, k, _ in side_files if k == "cifar"]
    if idx or cifar:
        label_paths = {p for p, k, _ in side_files if k == "idx_labels"}
        wanted = {p: idx_labels_path(p) for p in idx}
        found = [q for q in wanted.values() if q in label_paths or _exists(spark, q)]
        small = {r.path: bytes(r.content) for r in _binary(spark, found, cfg, recursive=False).collect()} if found else {}
        labels_by_path = {p: small.get(q) for p, q in wanted.items()}
        names = tuple(cfg.label_names)
        if cifar and not names:
            names = _cifar_names(spark, cifar, side_files, cfg)
        kinds = {p: k for p, k, _ in side_files}
        kind_udf = F.udf(lambda p: kinds.get(p, "cifar"), "string")
        df = _binary(spark, idx + cifar, cfg, recursive=False).select(
            "path", "content", "modificationTime", kind_udf("path").alias("kind"))
        df = df.repartition(max(1, len(idx + cifar)))
        out.append(df.mapInPandas(udfs.expand_arrays(labels_by_path, names, labels != "none"), schemas.OBJECTS))
    return out


def _exists(spark: "SparkSession", uri: str) -> bool:
    fs, path = hadoop_fs(spark, uri)
    return bool(fs.exists(path))


def _cifar_names(spark, cifar: list[str], side_files, cfg: IngestConfig) -> tuple[str, ...]:
    metas = {p for p, k, _ in side_files if k == "cifar_meta"}
    for c in cifar:
        for m in CIFAR_META:
            cand = posixpath.join(posixpath.dirname(c), m)
            if cand in metas or _exists(spark, cand):
                row = _binary(spark, cand, cfg, recursive=False).select("content").first()
                try:
                    return tuple(arrays.cifar_label_names(bytes(row.content)))
                except arrays.ArrayFormatError:
                    return ()
    return ()


def read_manifest(spark: "SparkSession", path: str) -> "DataFrame":
    """A manifest (csv with header, jsonl, parquet) with columns ``path`` and ``label``."""
    import os

    from pyspark.sql import functions as F

    low = path.lower()
    local = path if "://" in path else os.path.abspath(path)
    if "://" not in path and not os.path.isfile(local):
        raise UsageError(f"--labels {path}: no such manifest file (or use dirname / none)")
    if low.endswith(".csv"):
        df = spark.read.option("header", "true").csv(local)
    elif low.endswith((".jsonl", ".json", ".ndjson")):
        df = spark.read.json(local)
    elif low.endswith(".parquet"):
        df = spark.read.parquet(local)
    else:
        raise UsageError(f"--labels {path}: a manifest must be .csv, .jsonl or .parquet")
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        raise UsageError(f"--labels {path}: the manifest has no column {missing[0]!r} (needs path and label)")
    split = F.col("split").cast("string") if "split" in df.columns else F.lit(None).cast("string")
    return df.select(F.col("path").cast("string").alias("m_path"), F.col("label").cast("string").alias("m_label"),
                     split.alias("m_split"))


def apply_manifest(objects: "DataFrame", manifest: "DataFrame") -> "DataFrame":
    """Label objects from the manifest: its ``path`` matches ``rel_path``, or the full URI / path.
    Its optional ``split`` column becomes the objects' ``source_split`` (an extra column)."""
    from pyspark.sql import functions as F

    m = manifest.withColumn("m_path", F.regexp_replace("m_path", r"^\./", "")).dropDuplicates(["m_path"])
    by_rel = m.select(F.col("m_path").alias("k_rel"), F.col("m_label").alias("label_rel"),
                      F.col("m_split").alias("split_rel"))
    by_abs = m.select(F.col("m_path").alias("k_abs"), F.col("m_label").alias("label_abs"),
                      F.col("m_split").alias("split_abs"))
    plain = F.regexp_replace("source_uri", r"^file:(//)?", "")
    out = (
        objects.join(F.broadcast(by_rel), objects.rel_path == by_rel.k_rel, "left")
        .join(F.broadcast(by_abs), (objects.source_uri == by_abs.k_abs) | (plain == by_abs.k_abs), "left")
        .withColumn("label", F.coalesce("label_rel", "label_abs"))
        .withColumn("source_split", F.lower(F.coalesce("split_rel", "split_abs")))
    )
    return out.select(*schemas.OBJECTS.fieldNames(), "source_split")
