"""Transforms on small inline DataFrames, compared with pyspark.testing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


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
