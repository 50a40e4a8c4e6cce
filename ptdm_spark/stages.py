"""The stages of the pipeline, each a short table of contents: read -> transform -> write.

Each stage takes its own config section (``ingest``, ``process``, ``dedupe``, ``curate``) and runs
inside a job (:func:`ptdm_spark.pipeline.job.job`: a ``runs`` row, commits stamped with the run
id); :func:`run_stage` calls one by name with the whole config. The command dispatch
(``ptdm <stage>``, ``spark-submit jobs/<stage>.py``) lives in :mod:`ptdm_spark.cli.pipeline`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptdm_spark import report, schemas, udfs
from ptdm_spark.config import Config, CurateConfig, DedupeConfig, IngestConfig, LabelsConfig, ProcessConfig
from ptdm_spark.errors import UsageError
from ptdm_spark.imaging.pipeline import Params
from ptdm_spark.io import delta, sources
from ptdm_spark.pipeline import labels as p_labels
from ptdm_spark.pipeline.job import Clock, job, log, size_arrow_batches  # noqa: F401 (the stages' plumbing)
from ptdm_spark.pipeline.job import by as _by
from ptdm_spark.pipeline.job import read_table as _read
from ptdm_spark.pipeline.job import replace_table as _replace
from ptdm_spark.pipeline.job import stage_frame as _stage
from ptdm_spark.pipeline.job import write_table as _write
from ptdm_spark.runs import Run
from ptdm_spark.transforms import curate as t_curate
from ptdm_spark.transforms import dedupe as t_dedupe
from ptdm_spark.transforms import ingest as t_ingest
from ptdm_spark.transforms import process as t_process

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


# --- the stages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestInputs:
    """Ingest's arguments, checked before any job starts (misuse never writes a runs row)."""

    sources: list[sources.Source]
    labels: str  # dirname | none
    manifest: "DataFrame | None"

    @classmethod
    def prepare(cls, spark: "SparkSession", c: IngestConfig, srcs: list[str], labels: str | None) -> "IngestInputs":
        resolved = sources.resolve(spark, srcs)
        mode = labels or c.labels
        if mode in ("dirname", "none"):
            return cls(resolved, mode, None)
        return cls(resolved, "none", sources.read_manifest(spark, mode))


def ingest(spark: "SparkSession", c: IngestConfig, run: Run, inputs: IngestInputs) -> dict[str, Any]:
    """Sources -> raw_images (+ rejects for objects that could not be read).

    The image files' bytes are read once, by the ``raw_images`` write itself; what the job counts
    afterwards it reads from the listing, the commit's metrics and the table's key columns."""
    from pyspark.sql import functions as F

    clock = Clock("ingest")
    read = sources.read_objects(spark, inputs.sources, c, inputs.labels,
                                stage=lambda df, name: _stage(spark, df, run, name))
    clock.lap(f"listed {len(inputs.sources)} source(s), sorted the files by kind, staged the other objects")
    objects = read.files.unionByName(read.others)
    manifest = None
    if inputs.manifest is not None:
        manifest = sources.manifest_report(read.keys, inputs.manifest)
        if manifest.paths and not manifest.matched:
            raise UsageError(f"--labels: none of the manifest's {manifest.paths} paths names a file under the "
                             f"sources (e.g. {manifest.unmatched_examples[0]!r}); paths are matched below the "
                             "source folder (cats/a.jpg) or as full paths")
        objects = sources.apply_manifest(objects, inputs.manifest)
    metrics = _write(spark, run, "raw_images", t_ingest.raw_images(objects, run.run_id), ("source_uri", "image_id"))
    clock.lap("read the files and wrote raw_images")
    if manifest is not None:
        stored = spark.read.format("delta").load(run.table_path("raw_images")).select("source_uri", "label")
        differ = sources.labels_that_differ(read.keys, inputs.manifest, stored)
        run.counts.update(manifest_rows=manifest.rows, manifest_matched=manifest.matched,
                          manifest_unmatched=manifest.unmatched, manifest_conflicting=manifest.conflicting,
                          unlabelled=manifest.unlabelled, labels_differ=differ)
        report.manifest_summary(manifest, differ)

    # This run's objects as raw_images holds them (key columns only: no bytes are read).
    uris = read.expected.select(F.col("path").alias("source_uri")).unionByName(
        read.others.filter("error_reason IS NULL").select("source_uri"))
    seen = (spark.read.format("delta").load(run.table_path("raw_images")).select("source_uri", "image_id")
            .join(uris, "source_uri", "left_semi"))
    sizes = seen.agg(F.count_distinct("source_uri").alias("accepted"), F.count_distinct("image_id").alias("ids")).first()
    accepted, listed = int(sizes["accepted"]), uris.count()
    errors = read.others.filter("error_reason IS NOT NULL")
    rejected = t_ingest.rejects(read.others, run.run_id)
    if accepted < listed:  # a listed file yielded no row: it could not be read
        rejected = rejected.unionByName(t_ingest.unreadable(read.expected, seen, errors, run.run_id))
    rejected = _stage(spark, rejected, run, "rejects")
    reasons = _by(rejected, "reason")
    if reasons or not delta.is_delta_table(spark, run.table_path("rejects")):  # no empty MERGE
        _write(spark, run, "rejects", rejected, ("source_uri", "stage", "reason"))
    clock.lap("counted, found and wrote the rejects")

    missing = read.unaccounted() if read.unaccounted else []
    if missing:  # the contract broken: say so loudly, with the entries
        log(f"[ingest] warning: {len(missing)} listed entr{'y' if len(missing) == 1 else 'ies'} yielded no object: "
            + ", ".join(missing[:5]))
    run.counts.update(listed=read.listed, unaccounted=len(missing), objects=accepted + sum(reasons.values()),
                      accepted=accepted,
                      inserted=delta.rows_inserted(metrics), distinct_ids=int(sizes["ids"]),
                      rejected=sum(reasons.values()), **{f"rejected_{k}": v for k, v in reasons.items()})
    report.ingest_summary(run.counts, reasons)
    return run.counts


def process(spark: "SparkSession", c: ProcessConfig, run: Run) -> dict[str, Any]:
    """raw_images -> images (decoded, validated, scored, normalized) + rejects (reason codes).

    Two passes, so that the normalized bytes of the accepted images are written once, straight
    from the workers into ``images``: the first pass writes what it accepts and drops what it
    rejects. When it wrote fewer images than were pending, what is still pending (the rejects,
    normally few) is processed again, staged, and written with its reasons (and into ``images``,
    should an image pass this time)."""
    from pyspark.sql import functions as F

    raw = _read(spark, run, "raw_images")
    run.note_input(spark, "images")  # read through _done, anew after each write
    run.note_input(spark, "rejects")

    def write_images(processed: "DataFrame") -> int:
        return delta.rows_inserted(_write(spark, run, "images", t_process.images(
            processed, c.quality, run.run_id), ("image_id",)))

    stats = (raw.groupBy("image_id").agg(F.first("size_bytes").alias("n")).join(_done(spark, run), "image_id", "left_anti")
             .agg(F.count(F.lit(1)).alias("images"), F.sum("n").alias("bytes")).first())
    todo_n, todo_bytes = int(stats["images"]), int(stats["bytes"] or 0)
    log(f"[process] {todo_n} new image(s), {todo_bytes / 1e6:.1f} MB")
    inserted, reasons = 0, {}
    if todo_n:
        size_arrow_batches(spark, c.max_records_per_batch, c.batch_bytes, todo_n, todo_bytes)
        clock = Clock("process")
        # A multiple of the cores, so that the last wave of tasks keeps every core busy.
        cores = spark.sparkContext.defaultParallelism
        parts = cores * max(2, math.ceil(todo_bytes / (32 << 20) / cores))
        processed = _process_udf(c, t_process.pending(raw, _done(spark, run)), parts)
        clock.expect(todo_n, tasks=parts)
        inserted = write_images(processed)
        clock.lap(f"decoded, scored, normalized and wrote images in {parts} tasks")

        if inserted < todo_n:  # some were rejected (or a concurrent writer inserted them first)
            clock.expect(todo_n - inserted, tasks=cores)
            left = _stage(spark, _process_udf(c, t_process.pending(raw, _done(spark, run)), cores), run, "left")
            outcome = _by(left.withColumn("ok", F.col("reason").isNull()), "ok")
            if outcome.get("true"):
                inserted += write_images(left)
            new_rejects = t_process.rejects(left, run.run_id)
            _write(spark, run, "rejects", new_rejects, ("source_uri", "stage", "reason"))
            reasons = _by(new_rejects, "reason")
            clock.lap(f"processed the {sum(outcome.values())} image(s) it rejected again and wrote rejects")
    run.counts.update(pending=todo_n, images=inserted, rejected=sum(reasons.values()),
                      **{f"rejected_{k}": v for k, v in reasons.items()})
    report.process_summary(run.counts, reasons)
    return run.counts


def _done(spark: "SparkSession", run: Run) -> "DataFrame":
    """Ids the process stage has already decided: in ``images`` or rejected by process (read anew
    each time: a DataFrame over a Delta table keeps the snapshot it was made with)."""
    from pyspark.sql import functions as F

    ids = spark.createDataFrame([], "image_id string")
    for table, cond in (("images", "true"), ("rejects", "stage = 'process'")):
        path = run.table_path(table)
        if delta.is_delta_table(spark, path):
            ids = ids.unionByName(spark.read.format("delta").load(path).filter(cond).select("image_id"))
    return ids.filter(F.col("image_id").isNotNull()).distinct()


def _process_udf(c: ProcessConfig, todo: "DataFrame", parts: int) -> "DataFrame":
    return todo.repartition(parts).mapInPandas(
        udfs.process_images(Params.from_config(c), t_process.PASSTHROUGH), schemas.PROCESSED_OUT)


def dedupe(spark: "SparkSession", d: DedupeConfig, run: Run) -> dict[str, Any]:
    """images -> duplicates (pixel: identical pixels; phash: near duplicates) + label_conflicts."""
    from pyspark.sql import functions as F

    images = _read(spark, run, "images")
    for thumb in ("colour_thumb", "detail_thumb", "alpha_thumb"):  # a table written before the thumbnails existed
        if thumb not in images.columns:
            images = images.withColumn(thumb, F.lit(None).cast("binary"))
    # The inner pHash; the whole one where an image has none (processed before it existed) or the
    # inner search is off, so that every distance below is simply the fewest bits of the four pairs.
    inner = F.col("phash_inner") if "phash_inner" in images.columns and d.phash.inner_search else F.lit(None)
    images = images.withColumn("phash_inner", F.coalesce(inner.cast("long"), F.col("phash")))
    clock = Clock("dedupe")
    eligible, searched, groups = None, None, None
    if "phash" in d.methods:
        eligible = t_dedupe.phash_eligible(d.phash.min_side, d.phash.skip_flags)
        small = t_dedupe.phash_small(d.phash.min_side, d.phash.small_min_side, d.phash.skip_flags)
        searched = eligible | small
        # Small images (a shrunk logo) take part with their whole pHash, against eligible images
        # only; the inner pHash of a few pixels means nothing (nor in duplicates.distance).
        images = images.withColumn("phash_inner", F.when(eligible, F.col("phash_inner")).otherwise(F.col("phash")))
        nodes = images.filter(searched).select(
            "image_id", (F.col("width").cast("long") * F.col("height")).alias("pixels"), "phash", "phash_inner",
            "dhash", "colour_thumb", "detail_thumb", "alpha_thumb", "pixel_sha256", (~eligible).alias("small"))
        groups = _near_duplicate_graph(spark, d, run, nodes, clock)
    flat = None
    if "flat" in d.methods and "pixel_sums" in images.columns:
        flat = t_dedupe.flat_groups(t_dedupe.flat_colours(images, searched), d.flat.max_distance)
        flat = _stage(spark, flat, run, "flat") if flat is not None else None
    cols = ("image_id", "width", "height", "pixel_sha256", "phash", "phash_inner", "label", "labels", "flags")
    members = _stage(spark, t_dedupe.members(images.select(*cols), groups, eligible, "pixel" in d.methods, flat)
                     .select(*cols, "flat_rgb", "comp"), run, "members")
    dups = _stage(spark, t_dedupe.duplicates(members, run.run_id), run, "duplicates")
    clock.lap("grouped the images into components")
    # Both derived wholly from this run's components: replaced, not merged.
    _replace(spark, run, "duplicates", dups)
    conflicts = _stage(spark, t_dedupe.label_conflicts(members, dups, run.run_id), run, "conflicts")
    _replace(spark, run, "label_conflicts", conflicts)
    clock.lap("wrote duplicates and label_conflicts")

    by_method = _by(dups, "method")
    sizes = dups.groupBy("kept_id").agg((F.count(F.lit(1)) + 1).alias("n")).agg(
        F.count(F.lit(1)).alias("groups"), F.max("n").alias("largest")).first()
    run.counts.update(images=members.count(), groups=int(sizes["groups"]), largest_group=int(sizes["largest"] or 0),
                      label_conflicts=conflicts.count(), **{f"duplicates_{k}": v for k, v in by_method.items()})
    report.dedupe_summary(run.counts, by_method)
    return run.counts


def _near_duplicate_graph(spark: "SparkSession", d: DedupeConfig, run: Run, nodes: "DataFrame",
                          clock: Clock) -> "DataFrame | None":
    """Search the new pHashes of the images ``nodes`` (image_id, pixels, phash, phash_inner,
    dhash, colour_thumb, detail_thumb, alpha_thumb, pixel_sha256, small) against all (banded keys; then whole
    and inner values within ``inner_max_distance``: cropped copies; then small images' values
    against the others': shrunk copies), store the near pairs of pHash values, verify the image
    pairs they stand for (``t_dedupe.image_edges``: dHash, and whether they look alike: colour,
    detail and the shape of transparency; never two small images), and group the images so that every member is near its
    group's kept image (``t_dedupe.bounded_groups``): (image_id, kept_id) of the images with a
    verified pair; None without any."""
    from pyspark.sql import functions as F

    from ptdm_spark.imaging import hashing

    p = d.phash
    index = _read(spark, run, "phash_index", schemas.PHASH_INDEX)
    for c in ("inner_distance", "small_distance", "target_distance"):  # written before these searches existed
        if c not in index.columns:
            index = index.withColumn(c, F.lit(None).cast("int"))
    index = index.select("phash", "max_distance", "inner_distance", "small_distance", "target_distance")
    # Every value once, with its roles: w, an eligible image's whole pHash (the main search); e,
    # an eligible image's whole or inner pHash (the inner search, and the small images' targets);
    # s, a small image's pHash. Then what each search has not seen yet, from the index.
    roles = nodes.select(F.explode(F.array(
        F.struct(F.col("phash").alias("phash"), (~F.col("small")).alias("w"), (~F.col("small")).alias("e"),
                 F.col("small").alias("s")),
        F.struct(F.col("phash_inner").alias("phash"), F.lit(False).alias("w"), (~F.col("small")).alias("e"),
                 F.lit(False).alias("s")))).alias("r")).select("r.*")
    values = roles.groupBy("phash").agg(*(F.max(c).alias(c) for c in ("w", "e", "s"))).join(index, "phash", "left")
    main_new = F.col("w") & F.coalesce(F.col("max_distance") < p.max_distance, F.lit(True))
    inner_new = (F.col("e") & F.coalesce(F.col("inner_distance") < p.inner_max_distance, F.lit(True))
                 if p.inner_search else F.lit(False))
    values = _stage(spark, values.select(
        "*", main_new.alias("main_new"), inner_new.alias("inner_new"),
        (F.col("s") & F.coalesce(F.col("small_distance") < p.max_distance, F.lit(True))).alias("small_new"),
        (F.col("e") & F.coalesce(F.col("target_distance") < p.max_distance, F.lit(True))).alias("target_new")),
        run, "hashes")
    n = values.agg(*(F.sum(F.col(c).cast("long")).alias(c)
                     for c in ("w", "e", "s", "main_new", "inner_new", "small_new", "target_new"))).first()
    n = {k: int(v or 0) for k, v in n.asDict().items()}
    new, old, inner_new = n["main_new"], n["w"] - n["main_new"], n["inner_new"]
    log(f"[dedupe] {new} new pHash value(s) to search against {new + old}")

    def search(name: str, rows, radius: int, blocks: int, total: int, all_new: bool, cross: bool = False):
        masks = hashing.band_masks(radius, blocks)
        parts = max(2 * spark.sparkContext.defaultParallelism, math.ceil(total * len(masks) / 2_000_000))
        found = _stage(spark, t_dedupe.near_pairs(rows, masks, radius, parts, run.run_id, all_new=all_new,
                                                  cross=cross), run, name)
        return delta.rows_inserted(_write(spark, run, "phash_pairs", found, ("a", "b"))), len(masks), parts

    if new:
        run.counts["pairs_new"], keys, parts = search(
            "pairs", values.filter("w").select("phash", F.col("main_new").alias("is_new")), p.max_distance, p.blocks,
            n["w"], all_new=not old)
        clock.lap(f"searched {new} new hash(es): {keys} band keys each, {parts} tasks")
    if inner_new:
        # Whole and inner values not yet in an inner search, against all of them (cropped copies).
        run.counts["inner_pairs_new"], keys, _ = search(
            "inner_pairs", values.filter("e").select("phash", F.col("inner_new").alias("is_new")), p.inner_max_distance,
            p.inner_blocks, n["e"], all_new=inner_new == n["e"])
        clock.lap(f"searched {inner_new} new whole and inner pHash value(s) against {n['e']} "
                  f"within {p.inner_max_distance} bits (cropped copies), {keys} band keys each")
    # Small images' values against the eligible images' (new on either side), never each other.
    # Only when there are both: a side searched against nothing is not marked (it stays new).
    small_new = target_new = 0
    if n["s"] and n["e"] and (n["small_new"] or n["target_new"]):
        small_new, target_new = n["small_new"], n["target_new"]
        rows = (values.filter("s").select("phash", F.col("small_new").alias("is_new"), F.lit(True).alias("small"))
                .unionByName(values.filter("e").select("phash", F.col("target_new").alias("is_new"),
                                                       F.lit(False).alias("small"))))
        run.counts["small_pairs_new"], keys, _ = search(
            "small_pairs", rows, p.max_distance, p.blocks, n["s"] + n["e"],
            all_new=small_new == n["s"] and target_new == n["e"], cross=True)
        clock.lap(f"searched {n['s']} small image pHash value(s) ({small_new} new) against {n['e']} "
                  f"({target_new} new) within {p.max_distance} bits (shrunk copies), {keys} band keys each")
    # The index row of a value: max_distance, the radius it was searched at as a whole pHash (-1:
    # only as an inner or small value so far); inner_distance, the radius of the inner search it
    # took part in; small_distance, the radius its small images were searched at against the
    # others; target_distance, the radius the small images were searched at against it.
    # The main and inner searches ran whenever a value was new to them; the small one may not have.
    small_ran = bool(small_new or target_new)
    did_small = F.col("small_new") if small_ran else F.lit(False)
    did_target = F.col("target_new") if small_ran else F.lit(False)
    if new or inner_new or small_ran:
        rows = values.filter(F.col("main_new") | F.col("inner_new") | did_small | did_target).select(
            "phash",
            F.when(F.col("main_new"), F.lit(p.max_distance))
            .otherwise(F.coalesce(F.col("max_distance"), F.lit(-1))).alias("max_distance"),
            F.when(F.col("inner_new"), F.lit(p.inner_max_distance)).otherwise(F.col("inner_distance"))
            .alias("inner_distance"),
            F.when(did_small, F.lit(p.max_distance)).otherwise(F.col("small_distance")).alias("small_distance"),
            F.when(did_target, F.lit(p.max_distance)).otherwise(F.col("target_distance")).alias("target_distance"))
        _write(spark, run, "phash_index",
               schemas.conform(rows.withColumn("run_id", F.lit(run.run_id)), schemas.PHASH_INDEX), ("phash",),
               update_when_changed=("max_distance", "inner_distance", "small_distance", "target_distance"))
    run.counts.update(hashes=new + old, hashes_new=new, hashes_inner_new=inner_new, hashes_small=n["s"],
                      hashes_small_new=small_new)
    pairs = _read(spark, run, "phash_pairs", schemas.PHASH_PAIRS).filter(F.col("distance") <= p.max_distance)
    known = nodes.select(F.explode(F.array_distinct(F.array("phash", "phash_inner"))).alias("phash")).distinct()
    pairs = (pairs.join(known.withColumnRenamed("phash", "a"), "a", "left_semi")
             .join(known.withColumnRenamed("phash", "b"), "b", "left_semi"))
    edges = _stage(spark, t_dedupe.image_edges(pairs, nodes, p.confirm_above, p.dhash_max_distance,
                                               p.colour_max_distance, p.detail_max_distance, p.alpha_max),
                   run, "edges")
    run.counts["pairs"] = edges.count()
    if not run.counts["pairs"]:
        return None
    group_nodes = nodes.select(*t_dedupe.group_node_columns())
    if run.counts["pairs"] <= d.driver_components_max_edges:
        groups = t_dedupe.groups_in_memory(edges, group_nodes, p.member_max_distance, p.colour_max_distance,
                                             p.detail_max_distance, p.alpha_max)
        where = "on the driver"
    else:
        comps = t_dedupe.components(edges, lambda df, i: _stage(spark, df, run, f"components-{i}"))
        groups = t_dedupe.groups_in_spark(edges, group_nodes, comps, p.member_max_distance, p.colour_max_distance,
                                            p.detail_max_distance, p.alpha_max)
        where = "in Spark"
    groups = _stage(spark, groups, run, "groups")
    clock.lap(f"groups of {run.counts['pairs']} verified near-duplicate image pair(s), {where}")
    return groups


def curate(spark: "SparkSession", c: CurateConfig, labels: LabelsConfig, run: Run) -> dict[str, Any]:
    """Splits (per component, stable, stratified) -> splits + leakage; images - duplicates -
    excluded flags -> curated (with each image's current label under the ``labels`` policy)."""
    from pyspark.sql import functions as F

    images = _read(spark, run, "images")
    dups = _read(spark, run, "duplicates", schemas.DUPLICATES)
    old = _read(spark, run, "splits", schemas.SPLITS)
    # The label an image has now (its newest correction, else labels.policy), never the one it arrived with.
    current = p_labels.current_labels(spark, labels, run)
    members = _stage(spark, t_curate.with_components(
        images.drop("label").join(current, "image_id").select(
            "image_id", "label", "source_split", "flags", "width", "height", "channels", "pixel_sha256",
            "source_uri", "dropped"), dups), run, "members")

    placed = _stage(spark, t_curate.assign(members, old, c.source_splits == "keep"), run, "assign")
    pending = placed.filter(F.col("split").isNull())
    new_by_stratum = _by(pending.filter("eligible").withColumn("stratum", t_curate.stratum(F.col("label"))), "stratum")
    if new_by_stratum:
        have = (members.filter("eligible").join(old.select("image_id", "split"), "image_id")
                .groupBy(t_curate.stratum(F.col("label")).alias("stratum"), "split").count().collect())
        ranges = t_curate.rank_ranges([(r["stratum"], r["split"], int(r["count"])) for r in have],
                                      new_by_stratum, c.splits)
        ranges_df = spark.createDataFrame(ranges, "stratum string, split string, lo long, hi long")
        fresh = t_curate.assign_new(pending, ranges_df, c.seed)
    else:
        fresh = spark.createDataFrame([], "image_id string, split string, origin string")
    new_splits = placed.filter(F.col("split").isNotNull()).select("image_id", "split", "origin").unionByName(fresh)
    run.counts["split_assigned"] = delta.rows_inserted(
        _write(spark, run, "splits", t_curate.split_rows(new_splits, run.run_id), ("image_id",)))
    splits = _read(spark, run, "splits")
    leaks = _stage(spark, t_curate.leakage(members, splits, run.run_id), run, "leakage")
    _replace(spark, run, "leakage", leaks)

    cur = t_curate.curated(members.filter(~F.col("dropped")), splits, images, c.exclude_flags, run.run_id)
    _write(spark, run, "curated", cur, ("image_id",),
           update_when_changed=("label", "split", "pixel_sha256", "flags"), delete_missing=True)
    p_labels.update_classes(spark, run)
    by_split = _by(_read(spark, run, "curated"), "split")
    run.counts.update(curated=sum(by_split.values()), leaking=leaks.count(),
                      **{f"split_{k}": v for k, v in by_split.items()})
    report.curate_summary(run.counts, by_split)
    return run.counts


# --- by name --------------------------------------------------------------------------------------


def run_stage(name: str, spark: "SparkSession", cfg: Config, run: Run) -> dict[str, Any]:
    """Run the stage ``name`` (process, dedupe or curate: ingest needs its inputs) with its config
    section(s) of ``cfg``, inside ``run``'s job."""
    return STAGES[name](spark, cfg, run)


STAGES: dict[str, Callable[[Any, Config, Run], dict[str, Any]]] = {
    "process": lambda spark, cfg, run: process(spark, cfg.process, run),
    "dedupe": lambda spark, cfg, run: dedupe(spark, cfg.dedupe, run),
    "curate": lambda spark, cfg, run: curate(spark, cfg.curate, cfg.labels, run),
}
"""The stages after ingest, by name, each called with the whole config (it picks its sections)."""
