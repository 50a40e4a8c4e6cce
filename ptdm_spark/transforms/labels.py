"""Labels: the label an image has now, corrections, and the stable class indices. No I/O.

The label an image arrived with stays in ``images.label`` (and every source object's own label
in ``raw_images``). ``label_history`` holds every change made by ``ptdm labels import``; an
image's *current* label is its newest correction, else the policy's choice among the labels its
source objects carry (:func:`effective`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ptdm_spark import schemas


def latest_corrections(history: DataFrame) -> DataFrame:
    """(image_id, new_label) of each image's newest change (ties: the later run id)."""
    w = Window.partitionBy("image_id").orderBy(F.desc("changed_at"), F.desc("run_id"))
    return (history.withColumn("_r", F.row_number().over(w)).filter("_r = 1")
            .select("image_id", F.col("new_label").alias("corrected")))


def majority(raw: DataFrame, images: DataFrame) -> DataFrame:
    """(image_id, majority) from the source objects' labels (``raw``: image_id, label): the label
    most of them carry; a tie goes to the label the image arrived with, then to the smallest."""
    votes = raw.filter(F.col("label").isNotNull()).groupBy("image_id", "label").count()
    first = images.select("image_id", F.col("label").alias("_first"))
    w = Window.partitionBy("image_id").orderBy(
        F.desc("count"), F.desc(F.col("label") == F.col("_first")), F.col("label"))
    return (votes.join(first, "image_id", "left").withColumn("_r", F.row_number().over(w))
            .filter("_r = 1").select("image_id", F.col("label").alias("majority")))


def effective(images: DataFrame, history: DataFrame, policy: str, raw: DataFrame | None = None) -> DataFrame:
    """(image_id, label, dropped) for every image of ``images`` (image_id, label, labels).

    A correction wins. Otherwise, for an image whose source objects disagree (more than one
    label in ``labels``): ``first`` keeps ``images.label``; ``majority`` takes the majority of
    ``raw`` (the source objects: image_id, label); ``drop_ambiguous`` marks it ``dropped``
    (left out of curated).
    """
    ambiguous = F.coalesce(F.size("labels"), F.lit(0)) > 1
    out = images.select("image_id", "label", ambiguous.alias("_amb")).join(
        latest_corrections(history), "image_id", "left")
    corrected = F.col("corrected").isNotNull()
    if policy == "majority":
        if raw is None:
            raise ValueError("the majority policy needs the source objects' labels")
        out = out.join(majority(raw, images), "image_id", "left")
        chosen = F.when(F.col("_amb"), F.coalesce("majority", "label")).otherwise(F.col("label"))
    else:
        chosen = F.col("label")
    dropped = F.lit(False) if policy != "drop_ambiguous" else (F.col("_amb") & ~corrected)
    return out.select("image_id", F.when(corrected, F.col("corrected")).otherwise(chosen).alias("label"),
                      dropped.alias("dropped"))


def resolve(corrections: DataFrame, images: DataFrame, raw: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Corrections (c_image_id, c_source_uri, c_label, c_reason, c_annotator, c_row) -> image ids.

    A row names its image by ``image_id``, or by the ``source_uri`` of one of its source objects
    (``raw``: source_uri, image_id). Returns (matched: image_id, label, reason, annotator, c_row;
    unknown: the rows that name no image of ``images``, with what they named)."""
    by_uri = raw.select(F.col("source_uri").alias("_uri"), F.col("image_id").alias("_uri_id")).distinct()
    named = (corrections.join(by_uri, F.col("c_source_uri") == F.col("_uri"), "left")
             .withColumn("_id", F.coalesce("c_image_id", "_uri_id")))
    known = images.select(F.col("image_id").alias("_known"))
    joined = named.join(known, F.col("_id") == F.col("_known"), "left")
    matched = joined.filter(F.col("_known").isNotNull()).select(
        F.col("_id").alias("image_id"), F.col("c_label").alias("label"), F.col("c_reason").alias("reason"),
        F.col("c_annotator").alias("annotator"), "c_row")
    unknown = joined.filter(F.col("_known").isNull()).select(
        "c_row", F.coalesce("c_image_id", "c_source_uri").alias("named"))
    return matched, unknown


def changes(matched: DataFrame, current: DataFrame, source: str, run_id: str) -> tuple[DataFrame, DataFrame]:
    """The history rows of the corrections that change a label, and the images the file gives
    different labels (left alone: (image_id, labels)).

    ``current``: (image_id, label) now. A row whose label is already the current one changes
    nothing (so importing the same file twice records its changes once)."""
    per_image = matched.groupBy("image_id").agg(
        F.array_sort(F.collect_set("label")).alias("labels"),
        F.max_by(F.struct("label", "reason", "annotator"), "c_row").alias("last"))
    conflicting = per_image.filter(F.size("labels") > 1).select("image_id", "labels")
    one = per_image.filter(F.size("labels") == 1).select("image_id", "last.*")
    cur = current.select("image_id", F.col("label").alias("old_label"))
    out = (one.join(cur, "image_id").filter(~F.col("label").eqNullSafe(F.col("old_label")))
           .select("image_id", "old_label", F.col("label").alias("new_label"), F.lit(source).alias("source"),
                   "annotator", "reason", F.lit(run_id).alias("run_id"),
                   F.current_timestamp().alias("changed_at")))
    return schemas.conform(out, schemas.LABEL_HISTORY), conflicting


def class_indices(existing: Mapping[str, int], labels: Iterable[str]) -> dict[str, int]:
    """Indices for ``labels`` (all of them, old and new): an old label keeps its index; new ones
    get max(index) + 1, + 2, ... in name order (they appear in the same run, so the name breaks
    the tie). Indices are never reused, even for a label with no images left."""
    out = dict(existing)
    nxt = max(existing.values(), default=-1) + 1
    for label in sorted(set(labels) - set(existing)):
        out[label] = nxt
        nxt += 1
    return out
