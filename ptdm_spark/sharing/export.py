"""``ptdm export``: a release's curated data in the formats trainers' tools read.

The per-file work runs on the executors: ``folders`` writes one file per image from each task;
``webdataset`` and ``parquet`` cut each split into shards of about ``export.shard_bytes`` (by the
images' cumulative size in image_id order, so the cut is the same every time) and write one shard
per group. ``zip`` must become one file: the driver streams it, one bounded partition at a time.
``csv`` / ``jsonl`` are the manifest alone. ``--with-augmented`` adds the release's augmented
copies (``releases.augmented``) beside their sources, with their lineage in the manifest and
sample metadata (``formats.LINEAGE_COLUMNS``). Then the driver writes the manifest, ``release.json``
and ``MANIFEST.sha256`` (from the hashes the executors return).

Files appear under their final name only when complete (``outputs.Output``), and a file already
there with the expected size is not written again: an interrupted export rerun finishes the work
without duplicating anything.
"""

from __future__ import annotations

import math
import tempfile
from typing import TYPE_CHECKING, Any

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.pipeline.job import Clock, job, log, stage_frame
from ptdm_spark.sharing import formats, releases
from ptdm_spark.sharing.outputs import Output
from ptdm_spark.sharing.verify import MARKER

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

META = ("image_id", "label", "label_index", "split", "width", "height", "source_uri", "encoding")
HASHES = "path string, sha256 string, bytes long, images long"


def release_info(rel: releases.Release, fmt: str, split: str | None, with_augmented: bool = False) -> dict[str, Any]:
    """What ``release.json`` says (no timestamps of the export: two exports are identical).
    ``images`` and ``counts`` are the release's curated images; with augmented copies,
    ``augmented_version`` says which version of ``augmented`` they come from (the manifest lists them)."""
    counts = [{"split": s, "label": lb, "images": n} for s, lb, n in rel.counts if split in (None, s)]
    command = f"ptdm export --dataset {rel.dataset} --release {rel.name} --format {fmt}"
    extra: dict[str, Any] = {}
    if with_augmented:
        command += " --with-augmented"
        extra = {"with_augmented": True, "augmented_version": releases.augmented_version(rel)}
    return {**extra,
        "dataset": rel.dataset, "release": rel.name, "created_at": rel.created_at.isoformat(),
        "note": rel.note, "table_versions": rel.table_versions, "digest": rel.digest,
        "classes": [{"label": lb, "index": i} for lb, i in sorted(rel.classes.items(), key=lambda x: x[1])],
        "format": fmt, "split": split, "images": sum(c["images"] for c in counts), "counts": counts,
        "command": command + (f" --split {split}" if split else ""),
    }


def output_for(cfg: Config, path: str) -> Output:
    return Output(path, cfg.landing.webhdfs_url, cfg.landing.user)


def check_target(out: Output, fmt: str, info_bytes: bytes) -> None:
    """A fresh folder, or one holding this very export (finished or interrupted): anything else
    stops before a file is written."""
    if fmt == "zip":
        if out.is_dir():
            raise UsageError(f"--out {out.root}: is a folder; the zip format writes one file (e.g. {out.root}/data.zip)")
        return
    if not out.exists():
        return
    if not out.is_dir():
        raise UsageError(f"--out {out.root}: is a file; formats other than zip write a folder")
    files = out.files()
    if not files:
        return
    for name in (formats.RELEASE_FILE, MARKER):
        if name in files:
            with out.open_read(name) as f:
                if f.read() == info_bytes:
                    return
    raise UsageError(f"--out {out.root}: not empty, and not an export of this release and format "
                     "(choose a new folder)")


def run(spark: "SparkSession", cfg: Config, dataset: str, name: str, fmt: str, path: str, split: str | None,
        argv: list[str], with_augmented: bool = False) -> dict[str, int]:
    """Export release ``name`` of ``dataset`` as ``fmt`` to ``path`` (with its augmented copies
    when ``with_augmented``); returns the run's counts."""
    if fmt not in formats.FORMATS:
        raise UsageError(f"--format {fmt}: not one of {', '.join(formats.FORMATS)}")
    rel = releases.get(spark, cfg, dataset, name)
    splits = sorted({s for s, _, _ in rel.counts})
    if split is not None and split not in splits:
        raise UsageError(f"--split {split}: release {name!r} has the splits {', '.join(splits) or 'none'}")
    if with_augmented:
        releases.augmented_version(rel)  # none: one line, before the job
    info = release_info(rel, fmt, split, with_augmented)
    info_bytes = formats.release_json(info)
    out = output_for(cfg, path)
    check_target(out, fmt, info_bytes)

    with job(spark, cfg, "export", dataset, argv) as job_run:
        job_run.input_versions.update(rel.table_versions)
        clock = Clock("export")
        rows = _rows(spark, cfg, rel, split, with_augmented)
        if fmt in ("webdataset", "parquet"):
            rows = _with_shards(rows, cfg.export.shard_bytes)
        meta = stage_frame(spark, rows.drop("image"), job_run, "meta")
        from pyspark.sql import functions as F

        total = meta.agg(F.count(F.lit(1)).alias("n"), F.sum("nbytes").alias("b"),
                         (F.count("source_id") if with_augmented else F.lit(0)).alias("copies")).first()
        n_images, n_bytes, n_copies = int(total["n"]), int(total["b"] or 0), int(total["copies"])
        with_copies = f" ({n_copies} augmented)" if with_augmented else ""
        log(f"[export] release {name}: {n_images} image(s){with_copies}, {n_bytes / 1e6:.1f} MB, as {fmt} to {path}")
        if fmt == "zip":
            zip_out, zip_name = out.split()  # the folder, on the same filesystem (was: a local path for hdfs://)
            written = _zip(rows, zip_out, zip_name, n_bytes, cfg, info_bytes, clock, n_images, with_augmented)
        else:
            out.write(MARKER, info_bytes)
            hashes: dict[str, str] = {}
            if fmt in ("folders", "webdataset", "parquet"):
                clock.expect(n_images)
                got = _write_on_executors(spark, rows, out, fmt, n_bytes, with_augmented).collect()
                hashes.update({r["path"]: r["sha256"] for r in got})
                clock.lap(f"wrote {len(got)} file(s) on the executors")
            manifest = "manifest.jsonl" if fmt == "jsonl" else "manifest.csv"
            hashes[manifest] = _write_manifest(out, manifest, meta, fmt, with_augmented)
            out.write(formats.RELEASE_FILE, info_bytes)
            hashes[formats.RELEASE_FILE] = formats.sha256(info_bytes)
            out.write(formats.SHA_FILE, formats.sha_manifest(hashes))
            _tidy(out, set(hashes))
            clock.lap(f"wrote {manifest}, {formats.RELEASE_FILE} and {formats.SHA_FILE}")
            written = len(hashes) + 1
        job_run.counts.update(images=n_images, image_bytes=n_bytes, files=written)
        if with_augmented:
            job_run.counts["augmented"] = n_copies
    return job_run.counts


def _rows(spark: "SparkSession", cfg: Config, rel: releases.Release, split: str | None,
          with_augmented: bool = False) -> "DataFrame":
    """The release's curated rows (and augmented copies) with their label index and image size;
    the lineage columns (null for originals) when ``with_augmented``."""
    from pyspark.sql import functions as F

    cur = releases.curated(spark, cfg, rel)
    lineage: tuple[str, ...] = ()
    if with_augmented:
        lineage = formats.LINEAGE_COLUMNS
        copies = releases.augmented(spark, cfg, rel)
        cur = (cur.select(*(c for c in META if c != "label_index"), "image",
                          *(F.lit(None).cast(copies.schema[c].dataType).alias(c) for c in lineage))
               .unionByName(copies.select(*(c for c in META if c != "label_index"), "image", *lineage)))
    if split is not None:
        cur = cur.filter(F.col("split") == split)
    classes = spark.createDataFrame(sorted(rel.classes.items()), "label string, label_index int")
    return (cur.join(F.broadcast(classes), "label", "left")
            .withColumn("label_index", F.coalesce("label_index", F.lit(-1)))
            .select(*META, *lineage, "image", F.length("image").cast("long").alias("nbytes")))


def _with_shards(rows: "DataFrame", shard_bytes: int) -> "DataFrame":
    """Shard number per row: the images of a split in image_id order, cut every ``shard_bytes``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("split").orderBy("image_id").rowsBetween(Window.unboundedPreceding, Window.currentRow)
    shards = (rows.select("image_id", "split", "nbytes")
              .withColumn("shard", F.floor((F.sum("nbytes").over(w) - F.col("nbytes")) / F.lit(shard_bytes)).cast("int"))
              .select("image_id", "shard"))
    return rows.join(shards, "image_id")


def _lineage_values(r: dict[str, Any]) -> None:
    """pandas turns the null lineage of originals into NaN and the ints into floats: undo it."""
    for c in formats.LINEAGE_COLUMNS:
        v = r.get(c)
        if v is None or (isinstance(v, float) and v != v):
            r[c] = None
        elif c in ("seed", "copy"):
            r[c] = int(v)


def _write_on_executors(spark: "SparkSession", rows: "DataFrame", out: Output, fmt: str, n_bytes: int,
                        lineage: bool = False) -> "DataFrame":
    if fmt == "folders":
        parts = max(2 * spark.sparkContext.defaultParallelism, math.ceil(n_bytes / (64 << 20)))

        def write_files(batches):
            import pandas as pd

            for pdf in batches:
                res = []
                for r in pdf.itertuples(index=False):
                    rel = formats.tree_path(r.split, r.label, r.image_id, r.encoding)
                    data = bytes(r.image)
                    if out.size(rel) != len(data):
                        out.write(rel, data)
                    res.append((rel, formats.sha256(data), len(data), 1))
                yield pd.DataFrame(res, columns=["path", "sha256", "bytes", "images"])

        return rows.repartition(parts, "image_id").mapInPandas(write_files, HASHES)

    suffix = "tar" if fmt == "webdataset" else "parquet"

    def write_shard(pdf):
        import pandas as pd

        pdf = pdf.sort_values("image_id")
        recs = pdf.to_dict("records")
        for r in recs:
            r["label"] = None if r["label"] is None or (isinstance(r["label"], float)) else r["label"]
            if lineage:
                _lineage_values(r)
        data = formats.tar_shard(recs) if suffix == "tar" else formats.parquet_shard(recs, lineage)
        rel = formats.shard_name(recs[0]["split"], int(recs[0]["shard"]), suffix)
        if fmt == "parquet":
            rel = f"{recs[0]['split']}/{rel}"
        if out.size(rel) != len(data):
            out.write(rel, data)
        return pd.DataFrame([(rel, formats.sha256(data), len(data), len(recs))],
                            columns=["path", "sha256", "bytes", "images"])

    return rows.groupBy("split", "shard").applyInPandas(write_shard, HASHES)


def _manifest_path(fmt: str, r: Any) -> str:
    if fmt == "webdataset":
        return f"{formats.shard_name(r['split'], r['shard'], 'tar')}#{r['image_id']}"
    if fmt == "parquet":
        return f"{r['split']}/{formats.shard_name(r['split'], r['shard'], 'parquet')}#{r['image_id']}"
    return formats.tree_path(r["split"], r["label"], r["image_id"], r["encoding"])


def _manifest_rows(meta: "DataFrame", fmt: str):
    for r in meta.orderBy("split", "image_id").toLocalIterator():
        d = r.asDict()
        d["path"] = _manifest_path(fmt, d)
        yield d


def _write_manifest(out: Output, name: str, meta: "DataFrame", fmt: str, lineage: bool = False) -> str:
    """Stream the manifest to ``name`` (one row per image, by split then image_id); its SHA-256."""
    import hashlib

    h = hashlib.sha256()
    with out.open_write(name) as f:
        for chunk in _manifest_chunks(meta, fmt, formats.manifest_columns(lineage)):
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


def _manifest_chunks(meta: "DataFrame", fmt: str, columns: tuple[str, ...]):
    mfmt = "jsonl" if fmt == "jsonl" else "csv"
    yield formats.manifest_header(mfmt, columns)
    buf = []
    for d in _manifest_rows(meta, fmt):
        buf.append(formats.manifest_line(d, mfmt, columns))
        if len(buf) >= 4096:
            yield b"".join(buf)
            buf = []
    yield b"".join(buf)


def _tidy(out: Output, keep: set[str]) -> None:
    """Remove an interrupted run's leftovers (``.part`` files, the marker)."""
    for rel in out.files():
        if rel.endswith(".part") or rel == MARKER:
            out.remove(rel)


def _zip(rows: "DataFrame", out: Output, name: str, n_bytes: int, cfg: Config, info_bytes: bytes,
         clock: Clock, n_images: int, lineage: bool = False) -> int:
    """The tree in one ZIP at ``out/name``, streamed through the driver one partition at a time."""
    parts = max(1, math.ceil(n_bytes / cfg.export.stream_partition_bytes))
    ordered = rows.drop("nbytes").repartitionByRange(parts, "split", "image_id").sortWithinPartitions("split", "image_id")
    clock.expect(n_images)
    entries = 0
    with out.open_write(name) as raw, tempfile.SpooledTemporaryFile(64 << 20) as manifest:
        z = formats.ZipStream(raw)
        columns = formats.manifest_columns(lineage)
        manifest.write(formats.manifest_header("csv", columns))
        for r in ordered.toLocalIterator(prefetchPartitions=False):
            d = r.asDict()
            d["path"] = formats.tree_path(d["split"], d["label"], d["image_id"], d["encoding"])
            z.add(d["path"], bytes(d["image"]))
            manifest.write(formats.manifest_line(d, "csv", columns))
            entries += 1
            if entries % 10000 == 0:
                log(f"[export] zip: {entries}/{n_images} images")
        manifest.seek(0)
        z.add("manifest.csv", manifest.read(), compress=True)
        z.add(formats.RELEASE_FILE, info_bytes, compress=True)
        z.add(formats.SHA_FILE, formats.sha_manifest(dict(z.hashes)), compress=True)
        z.close()
    clock.lap(f"streamed {entries} images into {name}")
    return 1
