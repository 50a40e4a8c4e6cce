"""Transforms on small inline DataFrames, compared with pyspark.testing."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

pytestmark = pytest.mark.spark


def _images(spark, rows):
    return spark.createDataFrame(rows, "image_id string, pixel_sha256 string, width int, height int")


def test_pixel_duplicates_keep_largest_then_smallest_id(spark):
    from ptdm_spark.transforms.dedupe import pixel_duplicates

    images = _images(spark, [
        ("a", "p1", 10, 10), ("b", "p1", 20, 20), ("c", "p1", 20, 20),  # b and c largest: b (smaller id)
        ("d", "p2", 5, 5),  # alone: no duplicate row
        ("f", "p3", 8, 8), ("e", "p3", 8, 8),  # tie on size: e
    ])
    got = pixel_duplicates(images, "r1").select("image_id", "kept_id", "method", "distance")
    expected = spark.createDataFrame(
        [("a", "b", "pixel", 0), ("c", "b", "pixel", 0), ("f", "e", "pixel", 0)],
        "image_id string, kept_id string, method string, distance int")
    assertDataFrameEqual(got, expected)


def test_split_is_deterministic_stable_and_close_to_ratios(spark):
    from pyspark.sql import functions as F

    from ptdm_spark.transforms.curate import split_column

    splits = {"train": 0.8, "val": 0.1, "test": 0.1}
    ids = spark.range(20000).select(F.sha2(F.col("id").cast("string"), 256).alias("image_id"))
    first = ids.limit(5000).withColumn("split", split_column(F.col("image_id"), splits, "s"))
    both = ids.withColumn("split", split_column(F.col("image_id"), splits, "s"))
    # adding 15,000 ids moves none of the first 5,000
    assertDataFrameEqual(first, both.join(first.select("image_id"), "image_id"))
    counts = {r.split: r["count"] for r in both.groupBy("split").count().collect()}
    assert abs(counts["train"] / 20000 - 0.8) < 0.02 and abs(counts["test"] / 20000 - 0.1) < 0.02
    other_seed = ids.withColumn("split", split_column(F.col("image_id"), splits, "other"))
    assert other_seed.join(both, ["image_id", "split"]).count() < 20000 * 0.8


def test_flags_from_thresholds(spark, cfg):
    from ptdm_spark.transforms.process import with_flags

    df = spark.createDataFrame(
        [("flat", 0.0, 0.5, 0.0, 0.0, 10, 10, 3, 0.0), ("good", 500.0, 0.5, 0.2, 7.0, 100, 80, 3, 40.0),
         ("long", 500.0, 0.5, 0.2, 7.0, 500, 50, 1, 0.0)],
        "image_id string, blur double, brightness double, contrast double, entropy double, "
        "width int, height int, channels int, channel_spread double")
    flags = {r.image_id: set(r.flags) for r in with_flags(df, cfg.process.quality).collect()}
    assert flags["good"] == set()
    assert flags["long"] == {"extreme_aspect"}
    assert {"blurry", "near_constant", "low_contrast", "low_information", "grayscale"} <= flags["flat"]
