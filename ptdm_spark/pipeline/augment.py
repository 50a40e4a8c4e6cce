"""``ptdm augment``: seeded augmented copies of curated images -> ``augmented``.

Only the configured splits are augmented (default train), so a copy never crosses into val or
test; every row keeps its source's id, split and label and the parameters drawn. A rerun with
the same recipe and seed adds nothing (the pairs already made are skipped, and the table is
keyed by source, recipe, seed and copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptdm_spark.config import Config, conf_dir
from ptdm_spark.errors import UsageError
from ptdm_spark.imaging.augment import Recipe, RecipeError
from ptdm_spark.io import delta, sources
from ptdm_spark.pipeline.job import Clock, log, read_table, size_arrow_batches, stage_frame, write_table
from ptdm_spark.runs import Run

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

KEYS = ("source_id", "recipe", "seed", "copy")


def recipe_text(spark: "SparkSession | None", name: str) -> tuple[str, str]:
    """``--recipe`` -> (its text, a default name): a file (local or a Hadoop URI), or the name of a
    packaged recipe (``basic`` = ``conf/augment/basic.yaml``)."""
    import os

    if sources.is_uri(name):
        if spark is None:
            raise UsageError(f"--recipe {name}: a URI needs Spark")
        try:
            return sources.read_small(spark, name).decode(), os.path.splitext(os.path.basename(name))[0]
        except Exception as exc:  # py4j: FileNotFoundException and friends
            raise UsageError(f"--recipe {name}: cannot read it ({str(exc).splitlines()[0][:160]})") from None
    path = os.path.expanduser(name)
    if not os.path.isfile(path):
        packaged = conf_dir() / "augment" / f"{name}.yaml"
        if "/" not in name and packaged.is_file():
            path = str(packaged)
        else:
            known = sorted(p.stem for p in (conf_dir() / "augment").glob("*.yaml"))
            raise UsageError(f"--recipe {name}: no such file, nor a packaged recipe (packaged: {', '.join(known)})")
    with open(path, encoding="utf-8") as f:
        return f.read(), os.path.splitext(os.path.basename(path))[0]


@dataclass(frozen=True)
class AugmentInputs:
    """``ptdm augment``'s arguments, checked before the job starts."""

    recipe: Recipe
    seed: int
    copies: int
    splits: tuple[str, ...]

    @classmethod
    def prepare(cls, spark: "SparkSession | None", cfg: Config, recipe: str, seed: int | None, copies: int | None,
                splits: str | None) -> "AugmentInputs":
        text, default = recipe_text(spark, recipe)
        try:
            r = Recipe.from_yaml(text, default)
        except RecipeError as exc:
            raise UsageError(f"--recipe {recipe}: {exc}") from None
        if copies is not None and copies < 1:
            raise UsageError(f"--copies {copies}: must be at least 1")
        if seed is not None and seed < 0:
            raise UsageError(f"--seed {seed}: must be >= 0")
        names = tuple(s.strip() for s in splits.split(",") if s.strip()) if splits else cfg.augment.splits
        if not names:
            raise UsageError("--splits: name at least one split (e.g. train)")
        return cls(r, r.seed if seed is None else seed, r.copies if copies is None else copies, names)


def check_splits(spark: "SparkSession", curated_path: str, splits: tuple[str, ...]) -> None:
    """Before the job: at least one of ``splits`` exists in curated (a typo stops with one line)."""
    known = {row[0] for row in spark.read.format("delta").load(curated_path).select("split").distinct().collect()}
    if not set(splits) & known:
        raise UsageError(f"--splits {','.join(splits)}: curated has no such split "
                         f"(it has: {', '.join(sorted(known)) or 'none'})")


def augment(spark: "SparkSession", cfg: Config, run: Run, inputs: AugmentInputs) -> dict[str, Any]:
    """curated (the chosen splits) x copies -> augmented."""
    from pyspark.sql import functions as F

    from ptdm_spark import schemas
    from ptdm_spark.transforms import augment as t_augment

    r = inputs.recipe
    curated = read_table(spark, run, "curated")
    done = read_table(spark, run, "augmented", schemas.AUGMENTED)
    pairs = t_augment.todo(curated, done, inputs.splits, inputs.copies, r.name, inputs.seed)
    stats = pairs.agg(F.count(F.lit(1)).alias("n"), F.sum(F.length("image")).alias("bytes")).first()
    n, nbytes = int(stats["n"]), int(stats["bytes"] or 0)
    log(f"[augment] recipe {r.name!r}, seed {inputs.seed}, {inputs.copies} cop{'y' if inputs.copies == 1 else 'ies'} "
        f"of splits {', '.join(inputs.splits)}: {n} new cop{'y' if n == 1 else 'ies'} to make")
    inserted, failed = 0, 0
    if n:
        size_arrow_batches(spark, cfg.process.max_records_per_batch, cfg.process.batch_bytes, n, nbytes)
        cores = spark.sparkContext.defaultParallelism
        parts = cfg.augment.partitions or 2 * cores
        clock = Clock("augment")
        clock.expect(n, tasks=parts)
        made = stage_frame(spark, t_augment.augmented(pairs, r.to_json(), inputs.seed, parts), run, "made")
        failed = made.filter(F.col("error").isNotNull()).count()
        metrics = write_table(spark, run, "augmented", t_augment.rows(made, run.run_id), KEYS)
        inserted = delta.rows_inserted(metrics)
        clock.lap(f"made and wrote {n} augmented cop{'y' if n == 1 else 'ies'} in {parts} tasks")
    relabelled = _follow_labels(spark, run, curated)
    run.counts.update(pending=n, augmented=inserted, failed=failed, relabelled=relabelled)
    print(f"augment: {inserted} cop{'y' if inserted == 1 else 'ies'} added ({n} to make, {failed} failed) "
          f"by recipe {r.name!r} seed {inputs.seed}")
    return run.counts


def _follow_labels(spark: "SparkSession", run: Run, curated) -> int:
    """Copies whose source has been relabelled since (``ptdm labels import`` + ``curate``) take
    the source's current label; returns how many. Their bytes and split do not change."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = run.table_path("augmented")
    if not delta.is_delta_table(spark, path):
        return 0
    now = curated.select(F.col("image_id").alias("source_id"), F.col("label").alias("now"))
    stale = (spark.read.format("delta").load(path).select(*KEYS, "label").join(now, "source_id")
             .filter(~F.col("label").eqNullSafe(F.col("now"))).select(*KEYS, "now"))
    stale = stage_frame(spark, stale, run, "relabel")
    n = stale.count()
    if n:
        cond = " AND ".join(f"t.`{k}` = s.`{k}`" for k in KEYS)
        DeltaTable.forPath(spark, path).alias("t").merge(stale.alias("s"), cond) \
            .whenMatchedUpdate(set={"label": "s.now"}).execute()
        run.output_versions["augmented"] = delta.commit_of(spark, path, run.run_id)[0]
        log(f"[augment] {n} cop{'y' if n == 1 else 'ies'} took their source's new label")
    return n
