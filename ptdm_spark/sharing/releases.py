"""Named releases: a fixed, citable version of a dataset's curated data.

A release pins the Delta version of every table of the dataset, with the curated counts per split
and label, the class indices (``classes.class_indices``) and a content digest: SHA-256 over the
lines ``image_id<TAB>label<TAB>split<LF>`` (an unlabelled image's label is empty) of ``curated``
at that version, sorted by image_id. Everything that hands data to someone (exports, the loader,
the data API) reads the tables at a release's versions, never the live ones. A release never
changes: its row is only ever inserted, except that ``ptdm erase`` marks a release whose images it
removed as amended (``amended_at``, ``amended_by``: its pinned versions of the erased tables are
vacuumed and no longer read).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ptdm_spark import schemas
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta, sources
from ptdm_spark.pipeline.job import job, write_table
from ptdm_spark.sharing.classes import class_indices

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TABLE = "releases"


@dataclass(frozen=True)
class Release:
    name: str
    dataset: str
    created_at: dt.datetime
    user: str | None
    note: str | None
    run_id: str
    table_versions: dict[str, int]
    images: int
    counts: list[tuple[str, str | None, int]]  # (split, label, images)
    classes: dict[str, int]
    digest: str
    extra: dict[str, Any] = field(default_factory=dict)
    amended_at: dt.datetime | None = None  # set by ptdm erase (protect/erase.py)
    amended_by: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, r: Any) -> "Release":
        return cls(r["name"], r["dataset"], r["created_at"], r["user"], r["note"], r["run_id"],
                   {k: int(v) for k, v in (r["table_versions"] or {}).items()}, int(r["images"]),
                   [(c["split"], c["label"], int(c["images"])) for c in r["counts"]],
                   {c["label"]: int(c["index"]) for c in r["classes"]}, r["digest"],
                   amended_at=_get(r, "amended_at"), amended_by=tuple(_get(r, "amended_by") or ()))

    @property
    def amended(self) -> bool:
        return self.amended_at is not None

    @property
    def curated_version(self) -> int:
        return self.table_versions["curated"]


def _get(r: Any, name: str) -> Any:
    """A column a releases table written before it existed lacks (amended_at, amended_by)."""
    d = r.asDict() if hasattr(r, "asDict") else dict(r)
    return d.get(name)


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(f"release name {name!r}: use letters, digits, '.', '_' and '-' (up to 64), "
                         "starting with a letter or digit")
    return name


def digest_line(image_id: str, label: str | None, split: str) -> bytes:
    return f"{image_id}\t{label or ''}\t{split}\n".encode()


# --- reading ---------------------------------------------------------------------------------------


def dataset_tables(spark: "SparkSession", cfg: Config, dataset: str) -> dict[str, int]:
    """{table: current Delta version} of every Delta table under the dataset (not releases itself)."""
    fs, path = sources.hadoop_fs(spark, f"{cfg.lakehouse.root_uri.rstrip('/')}/{dataset}")
    if not fs.exists(path):
        return {}
    out = {}
    for st in fs.listStatus(path):
        name = st.getPath().getName()
        if not st.isDirectory() or name.startswith(("_", ".")) or name == TABLE:
            continue
        v = delta.table_version(spark, cfg.lakehouse.table_path(dataset, name))
        if v is not None:
            out[name] = int(v)
    return out


def all_releases(spark: "SparkSession", cfg: Config, dataset: str) -> list[Release]:
    path = cfg.lakehouse.table_path(dataset, TABLE)
    if not delta.is_delta_table(spark, path):
        return []
    rows = spark.read.format("delta").load(path).orderBy("created_at", "name").collect()
    return [Release.from_row(r) for r in rows]


def get(spark: "SparkSession", cfg: Config, dataset: str, name: str) -> Release:
    """The release ``name`` of ``dataset``; UsageError naming the known ones when there is none."""
    check_name(name)
    known = all_releases(spark, cfg, dataset)
    for r in known:
        if r.name == name:
            return r
    names = ", ".join(r.name for r in known) or "none yet"
    raise UsageError(f"no release {name!r} of dataset {dataset!r} (known: {names}; "
                     f"create one with: ptdm release create NAME --dataset {dataset})")


def read_at(spark: "SparkSession", cfg: Config, dataset: str, table: str, version: int) -> "DataFrame":
    """``table`` of ``dataset`` as it was at ``version`` (Delta time travel)."""
    return (spark.read.format("delta").option("versionAsOf", int(version))
            .load(cfg.lakehouse.table_path(dataset, table)))


def curated(spark: "SparkSession", cfg: Config, release: Release) -> "DataFrame":
    """The release's curated rows (the table at the release's version, never today's)."""
    return read_at(spark, cfg, release.dataset, "curated", release.curated_version)


def augmented_version(release: Release) -> int:
    """The version of ``augmented`` the release pins; UsageError when it was created before any
    ``ptdm augment``."""
    version = release.table_versions.get("augmented")
    if version is None:
        raise UsageError(f"release {release.name!r} has no augmented copies: it was created before any ptdm augment "
                         f"of {release.dataset!r} (run ptdm augment --dataset {release.dataset} --recipe R, then "
                         f"ptdm release create NEW --dataset {release.dataset})")
    return version


def augmented(spark: "SparkSession", cfg: Config, release: Release) -> "DataFrame":
    """The release's augmented copies: the ``augmented`` table at the release's version, only the
    copies of images curated in the release, each with its source's label, split and source_uri
    there. A copy whose bytes equal a curated image or an earlier copy (in (source_id, recipe,
    seed, copy) order) is left out, so every image_id appears once. UsageError when the release
    was created before any ``ptdm augment``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    version = augmented_version(release)
    cur = curated(spark, cfg, release)
    sources = cur.select(F.col("image_id").alias("source_id"), "label", "split", "source_uri")
    copies = (read_at(spark, cfg, release.dataset, "augmented", version)
              .select("image_id", "source_id", "recipe", "seed", "copy", "encoding", "width", "height", "image")
              .join(sources, "source_id")
              .join(cur.select("image_id"), "image_id", "left_anti"))
    first = Window.partitionBy("image_id").orderBy("source_id", "recipe", "seed", "copy")
    return copies.withColumn("_n", F.row_number().over(first)).filter("_n = 1").drop("_n")


# --- creating --------------------------------------------------------------------------------------


def content_digest(cur: "DataFrame") -> str:
    """SHA-256 over the sorted (image_id, label, split) lines (streamed to the driver)."""
    h = hashlib.sha256()
    for r in cur.select("image_id", "label", "split").orderBy("image_id").toLocalIterator():
        h.update(digest_line(r[0], r[1], r[2]))
    return h.hexdigest()


def classes_of(spark: "SparkSession", cfg: Config, dataset: str, versions: dict[str, int],
               cur: "DataFrame") -> dict[str, int]:
    """The class indices at these versions: the ``classes`` table's when it exists, else the
    sorted labels of ``cur`` (the rule is ``classes.class_indices``)."""
    table = None
    if "classes" in versions:
        table = [(r["label"], r["index"]) for r in
                 read_at(spark, cfg, dataset, "classes", versions["classes"]).select("label", "index").collect()]
    labels = [] if table is not None else [r[0] for r in cur.select("label").distinct().collect()]
    return class_indices(labels, table)


def create(spark: "SparkSession", cfg: Config, dataset: str, name: str, note: str | None,
           argv: list[str]) -> Release:
    """Record release ``name`` of ``dataset`` at the current versions of its tables."""
    from pyspark.sql import Row

    check_name(name)
    if any(r.name == name for r in all_releases(spark, cfg, dataset)):
        raise UsageError(f"release {name!r} of dataset {dataset!r} exists already: a release never changes "
                         "(choose another name)")
    if not delta.is_delta_table(spark, cfg.lakehouse.table_path(dataset, "curated")):
        raise UsageError(f"dataset {dataset!r} has no curated table yet (run: ptdm curate --dataset {dataset})")
    with job(spark, cfg, "release", dataset, argv) as run:
        versions = dataset_tables(spark, cfg, dataset)
        run.input_versions.update(versions)
        cur = read_at(spark, cfg, dataset, "curated", versions["curated"]).select("image_id", "label", "split").cache()
        counts = sorted(((r["split"], r["label"], int(r["count"])) for r in cur.groupBy("split", "label").count().collect()),
                        key=lambda c: (c[0], c[1] is not None, c[1] or ""))
        classes = classes_of(spark, cfg, dataset, versions, cur)
        digest = content_digest(cur)
        cur.unpersist()
        images = sum(c[2] for c in counts)
        row = Row(name=name, dataset=dataset, created_at=dt.datetime.now(dt.timezone.utc), user=_user(), note=note,
                  run_id=run.run_id, table_versions=versions, images=images,
                  counts=[Row(split=s, label=lb, images=n) for s, lb, n in counts],
                  classes=[Row(label=lb, index=i) for lb, i in sorted(classes.items(), key=lambda x: x[1])],
                  digest=digest, amended_at=None, amended_by=None)
        df = spark.createDataFrame([row], schemas.RELEASES)
        metrics = write_table(spark, run, TABLE, df, ("name",))
        if not delta.rows_inserted(metrics):  # another writer created the same name first
            raise UsageError(f"release {name!r} of dataset {dataset!r} exists already: a release never changes")
        run.counts.update(images=images, classes=len(classes), tables=len(versions))
    return get(spark, cfg, dataset, name)


def _user() -> str:
    from ptdm_spark.runs import _user as user

    return user()


# --- comparing -------------------------------------------------------------------------------------

CHANGES = ("added", "removed", "relabelled", "moved")


def diff(spark: "SparkSession", cfg: Config, a: Release, b: Release) -> "DataFrame":
    """Rows (image_id, change, label_a, label_b, split_a, split_b) of what changed from ``a`` to
    ``b``: added, removed, relabelled, moved (between splits; a relabelled image that also moved
    is listed twice, once per change)."""
    from pyspark.sql import functions as F

    left = curated(spark, cfg, a).select("image_id", F.col("label").alias("label_a"), F.col("split").alias("split_a"),
                                         F.lit(True).alias("in_a"))
    right = curated(spark, cfg, b).select("image_id", F.col("label").alias("label_b"), F.col("split").alias("split_b"),
                                          F.lit(True).alias("in_b"))
    j = left.join(right, "image_id", "full_outer")
    both = F.col("in_a").isNotNull() & F.col("in_b").isNotNull()
    parts = [
        j.filter(F.col("in_b").isNull()).withColumn("change", F.lit("removed")),
        j.filter(F.col("in_a").isNull()).withColumn("change", F.lit("added")),
        j.filter(both & ~F.col("label_a").eqNullSafe(F.col("label_b"))).withColumn("change", F.lit("relabelled")),
        j.filter(both & ~F.col("split_a").eqNullSafe(F.col("split_b"))).withColumn("change", F.lit("moved")),
    ]
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out.select("image_id", "change", "label_a", "label_b", "split_a", "split_b").orderBy("change", "image_id")


def warn(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
