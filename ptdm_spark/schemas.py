"""Every table's schema, declared once.

Transforms end with a contract ``select`` of these columns (:func:`conform`), so a table's
shape is decided here and nowhere else.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

TABLES = ("raw_images", "images", "rejects", "duplicates", "label_conflicts", "phash_index", "phash_pairs",
          "splits", "leakage", "curated", "runs", "fetch_log", "classes", "label_history", "augmented", "stats", "correlations",
          "outliers", "scorecard", "releases", "erasures")


def _s(*fields: tuple) -> StructType:
    return StructType([StructField(name, tp, nullable) for name, tp, nullable in fields])


# Every source object, whatever its kind, first becomes one row of this shape (see io/sources.py).
OBJECTS = _s(
    ("source_uri", StringType(), False),
    ("source_format", StringType(), False),  # file | tar | zip | idx | cifar
    ("content", BinaryType(), True),  # None when the object could not be read
    ("size_bytes", LongType(), True),
    ("label", StringType(), True),
    ("rel_path", StringType(), True),  # path relative to the source root (manifest matching)
    ("source_modified_at", TimestampType(), True),
    ("error_reason", StringType(), True),
    ("error_detail", StringType(), True),
)

# Where an image fetched by ``ptdm collect`` came from (NULL for files read by ingest).
PROVENANCE = _s(
    ("url", StringType(), True),
    ("final_url", StringType(), True),  # after redirects
    ("http_status", IntegerType(), True),
    ("fetched_at", TimestampType(), True),
    ("etag", StringType(), True),
    ("last_modified", StringType(), True),
    ("content_type", StringType(), True),
    ("license", StringType(), True),
    ("caption", StringType(), True),
)

RAW_IMAGES = _s(
    ("image_id", StringType(), False),
    ("source_uri", StringType(), False),
    ("source_format", StringType(), False),
    ("content", BinaryType(), False),
    ("size_bytes", LongType(), False),
    ("label", StringType(), True),
    ("source_split", StringType(), True),  # the split the source itself declares (train/t10k files, manifest)
    ("source_modified_at", TimestampType(), True),
    ("run_id", StringType(), False),
    ("ingested_at", TimestampType(), False),
    ("provenance", PROVENANCE, True),
)

# One row per HTTP try of ``ptdm collect`` (url, attempt and run_id are the key).
FETCH_LOG = _s(
    ("url", StringType(), False),
    ("host", StringType(), True),
    ("attempt", IntegerType(), False),  # 1-based over all runs
    ("status", IntegerType(), True),  # the last HTTP status seen (after redirects)
    ("reason", StringType(), True),  # NULL = success; else a reason code (rejects.reason)
    ("error", StringType(), True),
    ("elapsed_ms", LongType(), True),
    ("final_url", StringType(), True),
    ("bytes", LongType(), True),
    ("started_at", TimestampType(), True),
    ("run_id", StringType(), False),
)

REJECTS = _s(
    ("source_uri", StringType(), False),
    ("image_id", StringType(), True),
    ("stage", StringType(), False),  # ingest | collect | process
    ("reason", StringType(), False),  # see imaging.reasons
    ("detail", StringType(), True),
    ("run_id", StringType(), False),
    ("rejected_at", TimestampType(), False),
)

# Output of the per-image function (imaging.pipeline.process_image), before the split into
# images / rejects.
PROCESSED = _s(
    ("image_id", StringType(), False),
    ("reason", StringType(), True),
    ("detail", StringType(), True),
    ("format", StringType(), True),
    ("width", IntegerType(), True),
    ("height", IntegerType(), True),
    ("channels", IntegerType(), True),
    ("bit_depth", IntegerType(), True),
    ("orientation", IntegerType(), True),
    ("out_width", IntegerType(), True),
    ("out_height", IntegerType(), True),
    ("pixel_sha256", StringType(), True),
    ("phash", LongType(), True),
    ("dhash", LongType(), True),
    ("colour_thumb", BinaryType(), True),  # 16x16 Lab, for near-duplicate checks
    ("blur", DoubleType(), True),
    ("brightness", DoubleType(), True),
    ("contrast", DoubleType(), True),
    ("entropy", DoubleType(), True),
    ("aspect_ratio", DoubleType(), True),
    ("channel_spread", DoubleType(), True),
    ("image", BinaryType(), True),
    ("encoding", StringType(), True),
    ("decoder_warnings", StringType(), True),
    ("faces", IntegerType(), True),  # faces found (process.privacy.blur_faces); None when not searched
    ("pixel_sums", ArrayType(DoubleType()), True),  # see IMAGES
    ("detail_thumb", BinaryType(), True),  # see IMAGES
    ("phash_inner", LongType(), True),  # see IMAGES
    ("alpha_thumb", BinaryType(), True),  # see IMAGES
)

# process_image's record plus the image metadata that travels with it through the UDF.
PROCESSED_OUT = StructType(
    PROCESSED.fields
    + [
        StructField("label", StringType(), True),
        StructField("labels", ArrayType(StringType()), True),
        StructField("source_split", StringType(), True),
        StructField("source_uri", StringType(), True),
        StructField("source_count", IntegerType(), True),
    ]
)

IMAGES = _s(
    ("image_id", StringType(), False),
    ("label", StringType(), True),
    ("labels", ArrayType(StringType()), True),  # every distinct label its source objects carry
    ("source_split", StringType(), True),
    ("source_uri", StringType(), False),  # the first (smallest) source_uri with these bytes
    ("source_count", IntegerType(), False),
    ("format", StringType(), False),
    ("width", IntegerType(), False),
    ("height", IntegerType(), False),
    ("channels", IntegerType(), False),
    ("bit_depth", IntegerType(), False),
    ("orientation", IntegerType(), True),
    ("out_width", IntegerType(), False),
    ("out_height", IntegerType(), False),
    ("pixel_sha256", StringType(), False),
    ("phash", LongType(), True),
    ("dhash", LongType(), True),
    ("colour_thumb", BinaryType(), True),  # 16x16 Lab, for near-duplicate checks
    ("blur", DoubleType(), True),
    ("brightness", DoubleType(), True),
    ("contrast", DoubleType(), True),
    ("entropy", DoubleType(), True),
    ("aspect_ratio", DoubleType(), True),
    ("channel_spread", DoubleType(), True),
    ("flags", ArrayType(StringType()), False),
    ("image", BinaryType(), False),
    ("encoding", StringType(), False),
    ("decoder_warnings", StringType(), True),  # what the decoder warned about an accepted image
    # Faces found and blurred (process.privacy.blur_faces); NULL when the image was not searched
    # (blurring off, or a table written before the column existed).
    ("faces", IntegerType(), True),
    # The stored image's pixels and per-channel sums and sums of squares of its RGB values in
    # 0..1: [pixels, sum R, G, B, sum of squares R, G, B] (ptdm analyze's exact channel means and
    # stds without decoding again); NULL in rows written before the column existed.
    ("pixel_sums", ArrayType(DoubleType()), True),
    # 32x32 Lab (3,072 bytes) for the near-duplicate checks' crop alignment and local detail
    # (imaging.hashing.look_distances); NULL for images under 32 px a side and in rows written
    # before the column existed (their pairs are checked on colour_thumb alone, as before).
    ("detail_thumb", BinaryType(), True),
    # pHash of the central part (4 % off every side), matched against other images' whole pHash
    # to find cropped copies; NULL in rows written before the column existed.
    ("phash_inner", LongType(), True),
    # Two 32x32 maps of the transparency before it was composited away, coverage then silhouette
    # (2,048 bytes; imaging.quality.alpha_thumb): near-duplicate pairs whose alpha shapes differ
    # are not alike (imaging.hashing.alpha_distance). NULL without an alpha channel, with an
    # opaque one, and in rows written before the column existed (not checked on alpha).
    ("alpha_thumb", BinaryType(), True),
    ("run_id", StringType(), False),
    ("processed_at", TimestampType(), False),
)

# One row per image that is not the kept image of its duplicate component. kept_id names the
# component. method: pixel (same normalized pixels as the kept image) | phash (near duplicate) |
# flat (a flat image of nearly the kept one's colour); distance: the fewest pHash bits to the kept
# image's (whole or inner; 0 for pixel), for flat the largest mean-colour difference in levels.
DUPLICATES = _s(
    ("image_id", StringType(), False),
    ("kept_id", StringType(), False),
    ("method", StringType(), False),
    ("distance", IntegerType(), False),
    ("run_id", StringType(), False),
)

# Components whose members carry more than one label: label noise, for a human to look at.
LABEL_CONFLICTS = _s(
    ("kept_id", StringType(), False),
    ("members", IntegerType(), False),
    ("labels", ArrayType(StringType()), False),
    ("image_ids", ArrayType(StringType()), False),
    ("run_id", StringType(), False),
)

# Every pHash value already searched for near duplicates, and at which threshold: a later run
# compares only new hashes (against all), never old pairs again.
# One row per pHash value searched: a whole pHash (max_distance: the search radius, bits) or an
# inner one (max_distance -1 until it is some image's whole pHash too).
PHASH_INDEX = _s(
    ("phash", LongType(), False),
    ("max_distance", IntegerType(), False),
    ("run_id", StringType(), False),
    # The radius of the inner search (dedupe.phash.inner_max_distance) this value took part in;
    # NULL: not yet (tables written before the inner search, or with it off).
    ("inner_distance", IntegerType(), True),
    # The radius at which the small images holding this value (dedupe.phash.small_min_side up to
    # min_side) were searched against the eligible images' values; NULL: not yet.
    ("small_distance", IntegerType(), True),
    # The radius at which the small images' values were searched against this value (it is an
    # eligible image's whole or inner pHash); NULL: not yet.
    ("target_distance", IntegerType(), True),
)

# Verified near-duplicate edges between distinct pHash values (a < b), the graph of components.
PHASH_PAIRS = _s(
    ("a", LongType(), False),
    ("b", LongType(), False),
    ("distance", IntegerType(), False),
    ("run_id", StringType(), False),
)

# The split of every image, decided once: rows are only ever inserted, so an image never moves.
# origin: source (the dataset's own split) | component (joined a component that had a split)
# | assigned (new component, stratified by label).
SPLITS = _s(
    ("image_id", StringType(), False),
    ("split", StringType(), False),
    ("origin", StringType(), False),
    ("run_id", StringType(), False),
    ("assigned_at", TimestampType(), False),
)

# Images outside train whose duplicate component has a member in train.
LEAKAGE = _s(
    ("image_id", StringType(), False),
    ("split", StringType(), False),
    ("kept_id", StringType(), False),
    ("train_ids", ArrayType(StringType()), False),
    ("run_id", StringType(), False),
)

CURATED = _s(
    ("image_id", StringType(), False),
    ("label", StringType(), True),
    ("split", StringType(), False),
    ("image", BinaryType(), False),
    ("encoding", StringType(), False),
    ("width", IntegerType(), False),
    ("height", IntegerType(), False),
    ("channels", IntegerType(), False),
    ("pixel_sha256", StringType(), False),
    ("source_uri", StringType(), False),
    ("flags", ArrayType(StringType()), False),
    ("run_id", StringType(), False),
)

# The analysis tables (ptdm analyze): each row keyed by the Delta version of ``curated`` it analysed,
# so analyses of several versions sit side by side.
# scope: dataset | label | split | label_split | source | format | flag | reject_reason;
# metric: count, share, <column>_<min|p5|p50|p95|max|mean|std>, channel_<mean|std>_<R|G|B>, ...
STATS = _s(
    ("curated_version", LongType(), False),
    ("scope", StringType(), False),
    ("key", StringType(), False),
    ("metric", StringType(), False),
    ("value", DoubleType(), True),
    ("run_id", StringType(), False),
)

# method: pearson | spearman; a < b (column names).
CORRELATIONS = _s(
    ("curated_version", LongType(), False),
    ("method", StringType(), False),
    ("a", StringType(), False),
    ("b", StringType(), False),
    ("value", DoubleType(), True),
    ("run_id", StringType(), False),
)

# Images anomalous within their label: robust z = 0.6745 (value - median) / mad, |z| > threshold.
OUTLIERS = _s(
    ("curated_version", LongType(), False),
    ("image_id", StringType(), False),
    ("score", StringType(), False),
    ("label", StringType(), True),
    ("value", DoubleType(), False),
    ("median", DoubleType(), False),
    ("mad", DoubleType(), False),
    ("robust_z", DoubleType(), False),
    ("source_uri", StringType(), True),
    ("run_id", StringType(), False),
)

# One row per quality dimension: accuracy | completeness | consistency | reliability | timeliness.
SCORECARD = _s(
    ("curated_version", LongType(), False),
    ("dimension", StringType(), False),
    ("score", DoubleType(), False),
    ("inputs", MapType(StringType(), DoubleType()), False),
    ("formula", StringType(), False),
    ("detail", StringType(), True),
    ("run_id", StringType(), False),
)

# Every label of the dataset with a stable integer index: assigned once (a new label gets
# max(index) + 1, new labels of one run in name order), never changed, so a trained model's
# outputs keep their meaning. images: the label's curated images now (0 when none are left).
CLASSES = _s(
    ("label", StringType(), False),
    ("index", IntegerType(), False),
    ("first_seen", TimestampType(), False),
    ("images", LongType(), False),
)

# Every label change made by `ptdm labels import`: the label an image arrived with stays in
# images.label; its current label is the newest row here (see transforms/labels.py).
LABEL_HISTORY = _s(
    ("image_id", StringType(), False),
    ("old_label", StringType(), True),
    ("new_label", StringType(), True),
    ("source", StringType(), False),  # --source NAME: who or what the corrections come from
    ("annotator", StringType(), True),
    ("reason", StringType(), True),
    ("run_id", StringType(), False),
    ("changed_at", TimestampType(), False),
)

# Augmented copies (`ptdm augment`): one row per (source image, recipe, seed, copy index), with
# the concrete parameters drawn (JSON list of ops) and the source's split and label.
AUGMENTED = _s(
    ("image_id", StringType(), False),  # SHA-256 of the bytes
    ("source_id", StringType(), False),
    ("recipe", StringType(), False),
    ("seed", LongType(), False),
    ("copy", IntegerType(), False),
    ("params", StringType(), False),
    ("split", StringType(), False),
    ("label", StringType(), True),
    ("image", BinaryType(), False),
    ("encoding", StringType(), False),
    ("width", IntegerType(), False),
    ("height", IntegerType(), False),
    ("run_id", StringType(), False),
    ("augmented_at", TimestampType(), False),
)

RUNS = _s(
    ("run_id", StringType(), False),
    ("job", StringType(), False),
    ("dataset", StringType(), False),
    ("started_at", TimestampType(), False),
    ("finished_at", TimestampType(), True),  # NULL while running (or when abandoned)
    ("status", StringType(), False),  # running | succeeded | failed | usage_error | abandoned
    ("user", StringType(), True),
    ("host", StringType(), True),
    ("pid", LongType(), True),  # with host: tells a dead run (abandoned) from a live one
    ("config_hash", StringType(), False),
    ("config", StringType(), True),
    ("code_version", StringType(), True),
    ("args", StringType(), True),
    ("input_versions", MapType(StringType(), LongType()), True),
    ("output_versions", MapType(StringType(), LongType()), True),
    ("counts", MapType(StringType(), LongType()), True),
)

# A named, immutable release of a dataset (sharing/releases.py): the Delta version of every table
# at that moment, the curated counts per split and label, the class indices, and a content digest
# (SHA-256 over the sorted (image_id, label, split) rows of curated at that version).
RELEASES = _s(
    ("name", StringType(), False),
    ("dataset", StringType(), False),
    ("created_at", TimestampType(), False),
    ("user", StringType(), True),
    ("note", StringType(), True),
    ("run_id", StringType(), False),
    ("table_versions", MapType(StringType(), LongType()), False),
    ("images", LongType(), False),
    ("counts", ArrayType(StructType([StructField("split", StringType(), False),
                                     StructField("label", StringType(), True),
                                     StructField("images", LongType(), False)])), False),
    ("classes", ArrayType(StructType([StructField("label", StringType(), False),
                                      StructField("index", IntegerType(), False)])), False),
    ("digest", StringType(), False),
    # Set by ``ptdm erase`` when it removed images this release held (NULL: as created). The
    # release's pinned versions of the erased tables are vacuumed: they no longer read.
    ("amended_at", TimestampType(), True),
    ("amended_by", ArrayType(StringType()), True),  # the erasures' run ids
)

# One row per ``ptdm erase`` run: what was erased (ids, URIs and hashes, never content), why, by
# whom, when, the rows deleted per table and the table versions written (protect/erase.py).
ERASURES = _s(
    ("run_id", StringType(), False),
    ("dataset", StringType(), False),
    ("image_ids", ArrayType(StringType()), False),  # SHA-256 of the original bytes
    ("source_uris", ArrayType(StringType()), False),  # every source object removed
    ("urls", ArrayType(StringType()), False),  # fetch_log URLs removed (ptdm collect)
    ("image_sha256", ArrayType(StringType()), False),  # SHA-256 of the normalized bytes (images.image)
    ("pixel_sha256", ArrayType(StringType()), False),
    ("objects", LongType(), False),  # source objects erased (the accounting's "erased")
    ("reason", StringType(), False),
    ("user", StringType(), True),
    ("erased_at", TimestampType(), False),
    ("rows_deleted", MapType(StringType(), LongType()), False),
    ("table_versions", MapType(StringType(), LongType()), False),
    ("releases_amended", ArrayType(StringType()), False),
)


def conform(df: DataFrame, schema: StructType) -> DataFrame:
    """The contract select: exactly ``schema``'s columns, in order, cast to its types."""
    return df.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])
