"""``ptdm labels import|suspects`` and the ``classes`` table curate keeps.

``import``: a file of corrections (CSV, JSON lines or Parquet; rows name an image by ``image_id``
or by a ``source_uri`` of one of its source objects, with ``label`` and optional ``reason`` and
``annotator``) becomes ``label_history`` rows for the labels it changes. Rows that name no image
are reported, never silently dropped. ``ptdm curate`` then uses the corrected labels; splits never
move (the ``splits`` table only gains rows).

``suspects``: a review queue for annotators (label conflicts between near duplicates, images
whose source objects disagree, outliers when ``analyze`` wrote them), as CSV plus a small HTML
page with thumbnails. The CSV's ``label`` column is the current label: edit it and import the
file back.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
from typing import TYPE_CHECKING, Any

from ptdm_spark import schemas
from ptdm_spark.config import Config, LabelsConfig
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta, sources
from ptdm_spark.pipeline.job import log, read_table, stage_frame, write_table
from ptdm_spark.runs import Run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FORMATS = (".csv", ".jsonl", ".json", ".ndjson", ".parquet")


def check_file(path: str) -> None:
    """Before Spark: the corrections file exists (local) and has a known extension."""
    if not path.lower().endswith(FORMATS):
        raise UsageError(f"{path}: a corrections file must be .csv, .jsonl or .parquet")
    if "://" not in path and not os.path.exists(os.path.expanduser(path)):
        raise UsageError(f"no such file: {path}")


def read_corrections(spark: "SparkSession", path: str) -> "DataFrame":
    """(c_row, c_image_id, c_source_uri, c_label, c_reason, c_annotator) from a corrections file."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    check_file(path)
    low, loc = path.lower(), path if "://" in path else os.path.abspath(os.path.expanduser(path))
    try:
        if low.endswith(".csv"):
            df = (spark.read.option("header", "true").option("quote", '"').option("escape", '"')
                  .option("multiLine", "true").option("mode", "FAILFAST").csv(loc))
        elif low.endswith(".parquet"):
            df = spark.read.parquet(loc)
        else:
            df = spark.read.json(loc)
        cols = df.columns
    except Exception as exc:  # Spark's AnalysisException / py4j: unreadable, not the format
        raise UsageError(f"{path}: cannot read it as {low.rsplit('.', 1)[-1]} ({str(exc).splitlines()[0][:160]})") \
            from None
    if "label" not in cols or not ({"image_id", "source_uri"} & set(cols)):
        raise UsageError(f"{path}: needs a column label and a column image_id or source_uri (has: {', '.join(cols)})")
    for c in ("image_id", "source_uri", "label", "reason", "annotator"):
        if c in cols and isinstance(df.schema[c].dataType, (T.ArrayType, T.MapType, T.StructType)):
            raise UsageError(f"{path}: column {c!r} is {df.schema[c].dataType.simpleString()}, expected a string")

    def col(name: str):
        return F.nullif(F.trim(F.col(name).cast("string")), F.lit("")) if name in cols else F.lit(None).cast("string")

    return df.select(F.monotonically_increasing_id().alias("c_row"), col("image_id").alias("c_image_id"),
                     col("source_uri").alias("c_source_uri"), col("label").alias("c_label"),
                     col("reason").alias("c_reason"), col("annotator").alias("c_annotator"))


def current_labels(spark: "SparkSession", c: LabelsConfig, run: Run) -> "DataFrame":
    """(image_id, label, dropped): every image's label now (corrections, then labels.policy)."""
    from ptdm_spark.transforms import labels as t_labels

    images = read_table(spark, run, "images").select("image_id", "label", "labels")
    history = read_table(spark, run, "label_history", schemas.LABEL_HISTORY)
    raw = None
    if c.policy == "majority":
        raw = read_table(spark, run, "raw_images").select("image_id", "label")
    return t_labels.effective(images, history, c.policy, raw)


def import_labels(spark: "SparkSession", cfg: Config, run: Run, path: str, source: str) -> dict[str, Any]:
    """A corrections file -> ``label_history`` (the changes it makes)."""
    from pyspark.sql import functions as F

    from ptdm_spark.transforms import labels as t_labels

    corrections = read_corrections(spark, path)
    corrections = stage_frame(spark, corrections, run, "corrections")
    images = read_table(spark, run, "images").select("image_id")
    raw = read_table(spark, run, "raw_images").select("source_uri", "image_id")
    named = corrections.filter(F.col("c_image_id").isNotNull() | F.col("c_source_uri").isNotNull())
    usable = named.filter(F.col("c_label").isNotNull())
    matched, unknown = t_labels.resolve(usable, images, raw)
    changes, conflicting = t_labels.changes(matched, current_labels(spark, cfg.labels, run), source, run.run_id)
    changes = stage_frame(spark, changes, run, "changes")
    n_rows, n_named, n_usable = corrections.count(), named.count(), usable.count()
    unknown_rows = unknown.orderBy("c_row").collect()
    conflicts = conflicting.orderBy("image_id").collect()
    n_changes = changes.count()
    if n_changes or not delta.is_delta_table(spark, run.table_path("label_history")):
        write_table(spark, run, "label_history", changes, ("image_id", "run_id"))
    if unknown_rows:
        shown = ", ".join(r["named"] for r in unknown_rows[:5])
        log(f"[labels] {len(unknown_rows)} row(s) name no image of {run.dataset!r} (left out): {shown}"
            + (" ..." if len(unknown_rows) > 5 else ""))
    if conflicts:
        log(f"[labels] {len(conflicts)} image(s) get different labels in the file (left unchanged): "
            + ", ".join(f"{r['image_id'][:12]} {'/'.join(r['labels'])}" for r in conflicts[:5]))
    matched_n = n_usable - len(unknown_rows)
    run.counts.update(rows=n_rows, unnamed=n_rows - n_named, unlabelled=n_named - n_usable, unknown=len(unknown_rows),
                      matched=matched_n, conflicting=len(conflicts), changed=n_changes,
                      unchanged=matched_n - n_changes)
    print(f"labels import: {n_rows} row(s): {n_changes} label(s) changed, {len(unknown_rows)} unknown id(s), "
          f"{n_named - n_usable} without a label, {n_rows - n_named} naming no image_id/source_uri, "
          f"{len(conflicts)} image(s) with conflicting rows (source {source!r})")
    if n_changes:
        print(f"labels import: run `ptdm curate --dataset {run.dataset}` to apply them to curated")
    return run.counts


# --- classes -------------------------------------------------------------------------------------


def update_classes(spark: "SparkSession", run: Run) -> dict[str, int]:
    """After curated is written: new labels get the next indices; every label's image count is
    refreshed (a label with none left keeps its index, with 0 images). Returns label -> index."""
    from pyspark.sql import functions as F

    from ptdm_spark.transforms import labels as t_labels

    counts = {r["label"]: int(r["count"]) for r in
              read_table(spark, run, "curated").filter(F.col("label").isNotNull()).groupBy("label").count().collect()}
    old = {r["label"]: r for r in read_table(spark, run, "classes", schemas.CLASSES).collect()}
    indices = t_labels.class_indices({k: int(r["index"]) for k, r in old.items()}, counts)
    now = dt.datetime.now(dt.timezone.utc)
    rows = [(label, idx, old[label]["first_seen"] if label in old else now, counts.get(label, 0))
            for label, idx in sorted(indices.items(), key=lambda kv: kv[1])]
    if rows:
        write_table(spark, run, "classes", spark.createDataFrame(rows, schemas.CLASSES), ("label",),
                    update_when_changed=("images",))
    run.counts["classes"] = len(rows)
    run.counts["classes_new"] = len(set(indices) - set(old))
    return indices


# --- suspects ------------------------------------------------------------------------------------

SUSPECT_COLUMNS = ("image_id", "label", "suspect", "detail", "source_uri")


def suspects(spark: "SparkSession", cfg: Config, run: Run, out: str, limit: int) -> dict[str, Any]:
    """The review queue: ``out`` (CSV; ``label`` is the current label, to be edited and imported
    back) and ``out`` with ``.html`` (the same rows with thumbnails)."""
    from pyspark.sql import functions as F

    images = read_table(spark, run, "images")
    current = current_labels(spark, cfg.labels, run).select("image_id", "label")
    found = spark.createDataFrame([], "image_id string, suspect string, detail string")
    conflicts = read_table(spark, run, "label_conflicts", schemas.LABEL_CONFLICTS)
    found = found.unionByName(conflicts.select(
        F.explode("image_ids").alias("image_id"), F.lit("label_conflict").alias("suspect"),
        F.concat(F.lit("near duplicates carry "), F.array_join("labels", " / ")).alias("detail")))
    found = found.unionByName(images.filter(F.size("labels") > 1).select(
        "image_id", F.lit("sources_disagree").alias("suspect"),
        F.concat(F.lit("source objects say "), F.array_join("labels", " / ")).alias("detail")))
    n_outliers = 0
    if delta.is_delta_table(spark, run.table_path("outliers")):
        outl = read_table(spark, run, "outliers")
        if "image_id" in outl.columns:
            what = [c for c in ("metric", "reason", "kind", "score", "label") if c in outl.columns]
            detail = F.concat_ws(" ", *[F.concat(F.lit(f"{c}="), F.col(c).cast("string")) for c in what]) \
                if what else F.lit("per-label outlier")
            part = outl.select("image_id", F.lit("outlier").alias("suspect"), detail.alias("detail"))
            found = found.unionByName(part)
            n_outliers = part.count()
    per_image = (found.groupBy("image_id").agg(
        F.array_join(F.array_sort(F.collect_set("suspect")), ",").alias("suspect"),
        F.array_join(F.array_sort(F.collect_set("detail")), "; ").alias("detail"),
        F.count(F.lit(1)).alias("_n"))
        .join(current, "image_id").join(images.select("image_id", "source_uri", "image"), "image_id"))
    picked = per_image.orderBy(F.desc("_n"), "suspect", "image_id").limit(limit).collect()
    _write_text(spark, out, _csv(picked))
    page = os.path.splitext(out)[0] + ".html"
    _write_text(spark, page, _html(picked, run.dataset))
    by = {}
    for r in picked:
        for s in r["suspect"].split(","):
            by[s] = by.get(s, 0) + 1
    run.counts.update(suspects=len(picked), outliers_read=n_outliers, **{f"suspect_{k}": v for k, v in by.items()})
    print(f"labels suspects: {len(picked)} image(s) to review -> {out} and {page} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(by.items())) or 'nothing suspect'})")
    return run.counts


def _csv(rows: list) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(SUSPECT_COLUMNS)
    for r in rows:
        w.writerow(["" if r[c] is None else r[c] for c in SUSPECT_COLUMNS])
    return buf.getvalue()


def _thumb(data: bytes, side: int = 96) -> str:
    from ptdm_spark.imaging import augment as A
    from ptdm_spark.imaging.cv import cv2

    rgb = A.decode_rgb(data)
    if rgb is None:
        return ""
    h, w = rgb.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return "data:image/png;base64," + base64.b64encode(A.png_bytes(rgb)).decode()


def _html(rows: list, dataset: str) -> str:
    cells = "\n".join(
        f"<tr><td><img src=\"{_thumb(bytes(r['image']))}\" width=\"96\"></td><td><code>{html.escape(r['image_id'])}"
        f"</code></td><td>{html.escape(r['label'] or '')}</td><td>{html.escape(r['suspect'])}</td>"
        f"<td>{html.escape(r['detail'] or '')}</td><td>{html.escape(r['source_uri'])}</td></tr>" for r in rows)
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{html.escape(dataset)}: labels to review"
            "</title><style>body{font-family:sans-serif}td{border-bottom:1px solid #ddd;padding:4px;"
            "vertical-align:top}img{image-rendering:pixelated}</style></head><body>"
            f"<h1>{html.escape(dataset)}: {len(rows)} image(s) to review</h1><p>Edit the label column of the CSV "
            "next to this page and import it: <code>ptdm labels import FILE --dataset "
            f"{html.escape(dataset)}</code></p><table><tr><th></th><th>image_id</th><th>label</th><th>suspect</th>"
            f"<th>detail</th><th>source</th></tr>\n{cells}\n</table></body></html>\n")


def _write_text(spark: "SparkSession", uri: str, text: str) -> None:
    """Write a small file through Hadoop's FileSystem (local paths and hdfs:// alike)."""
    target = uri if "://" in uri else "file://" + os.path.abspath(os.path.expanduser(uri))
    fs, path = sources.hadoop_fs(spark, target)
    parent = path.getParent()
    if parent is not None and not fs.exists(parent):
        fs.mkdirs(parent)
    stream = fs.create(path, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
