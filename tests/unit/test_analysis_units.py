"""The scorecard's definitions and the per-image pieces of analyze, without a JVM."""

from __future__ import annotations

import numpy as np
import pytest

from ptdm_spark.analysis import scorecard
from ptdm_spark.imaging import summary
from tests.imagefiles import encode

pytestmark = pytest.mark.unit

CLEAN = {"curated": 100, "images": 100, "source_objects": 100, "conflict_images": 0, "outlier_images": 0,
         "usable_objects": 100, "cells": 6, "empty_cells": 0, "leaking": 0, "multi_label_images": 0,
         "modal_shape_share": 1.0, "rejected_objects": 0, "decoder_warning_images": 0, "fresh_objects": 100,
         "dated_objects": 100, "days_since_last_ingest": 0.0, "freshness_days": 365.0}


def scores(**changes):
    return {d.dimension: d.score for d in scorecard.compute({**CLEAN, **changes})}


def test_a_clean_dataset_scores_one_everywhere():
    assert scores() == {d: 1.0 for d in scorecard.DIMENSIONS}


@pytest.mark.parametrize("dimension, changes", [
    ("accuracy", {"conflict_images": 10}),
    ("accuracy", {"outlier_images": 5}),
    ("completeness", {"usable_objects": 80}),
    ("completeness", {"empty_cells": 1}),
    ("consistency", {"leaking": 3}),
    ("consistency", {"multi_label_images": 4}),
    ("consistency", {"modal_shape_share": 0.7}),
    ("reliability", {"rejected_objects": 10}),
    ("reliability", {"decoder_warning_images": 2}),
    ("timeliness", {"fresh_objects": 50}),
    ("timeliness", {"days_since_last_ingest": 200.0}),
])
def test_each_planted_problem_lowers_its_dimension_only(dimension, changes):
    got = scores(**changes)
    assert got[dimension] < 1.0
    assert all(v == 1.0 for d, v in got.items() if d != dimension)


def test_scores_stay_in_the_unit_interval():
    got = scores(conflict_images=500, rejected_objects=900, days_since_last_ingest=9999.0, empty_cells=10)
    assert all(0.0 <= v <= 1.0 for v in got.values())


def test_channel_sums_of_grey_and_colour_images_equal_numpys():
    rng = np.random.default_rng(1)
    colour = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (9, 5), dtype=np.uint8)
    n, s, q = summary.channel_sums(encode(colour))
    x = colour.reshape(-1, 3).astype(np.float64) / 255
    assert n == 17 * 23 and np.allclose(s, x.sum(0), atol=1e-9) and np.allclose(q, (x * x).sum(0), atol=1e-9)
    n2, s2, q2 = summary.channel_sums(encode(grey))
    g = grey.reshape(-1).astype(np.float64) / 255
    assert n2 == 45 and np.allclose(s2, [g.sum()] * 3, atol=1e-9)
    mean, std = summary.mean_std(n + n2, s + s2, q + q2)
    allpx = np.concatenate([x, np.repeat(g[:, None], 3, 1)])
    assert np.allclose(mean, allpx.mean(0), atol=1e-12) and np.allclose(std, allpx.std(0), atol=1e-12)


def test_channel_sums_of_16_bit_and_alpha_images_equal_those_of_their_float_pixels():
    """The integer sums equal the float64 sums of :func:`summary.rgb01` (alpha dropped, 16-bit
    scaled by 65535), channel by channel in RGB order."""
    rng = np.random.default_rng(2)
    for px in (rng.integers(0, 65536, (11, 7, 3), dtype=np.uint16), rng.integers(0, 256, (6, 13, 4), dtype=np.uint8),
               rng.integers(0, 65536, (8, 8), dtype=np.uint16)):
        data = encode(px)
        n, s, q = summary.channel_sums(data)
        x = summary.rgb01(data).reshape(-1, 3)
        assert n == px.shape[0] * px.shape[1]
        assert np.allclose(s, x.sum(0), rtol=1e-12) and np.allclose(q, (x * x).sum(0), rtol=1e-12)


@pytest.mark.parametrize("out_format", ["png", "jpeg", "webp"])
def test_process_stores_the_channel_sums_of_the_image_it_stores(params, out_format):
    """``pixel_sums`` of a processed image equal numpy's sums over the stored bytes decoded again
    (so JPEG's and WebP's changes to the pixels are in them), for colour, grey and alpha inputs."""
    import dataclasses

    from ptdm_spark.imaging.cv import cv2
    from ptdm_spark.imaging.pipeline import process_image

    p = dataclasses.replace(params, out_format=out_format)
    rng = np.random.default_rng(3)
    for px in (rng.integers(0, 256, (40, 31, 3), dtype=np.uint8), rng.integers(0, 256, (20, 24), dtype=np.uint8),
               rng.integers(0, 256, (18, 18, 4), dtype=np.uint8)):
        rec = process_image(encode(px), p)
        stored = cv2.imdecode(np.frombuffer(rec["image"], np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        x = stored.reshape(-1, 3).astype(np.float64) / 255
        got = np.array(rec["pixel_sums"])
        assert got.shape == (7,) and got[0] == x.shape[0]
        assert np.allclose(got[1:4], x.sum(0), rtol=1e-12) and np.allclose(got[4:], (x * x).sum(0), rtol=1e-12)
    assert process_image(b"not an image", p)["pixel_sums"] is None


def test_thumbnails_are_bounded_and_bad_bytes_give_none():
    big = np.zeros((300, 200, 3), np.uint8)
    from ptdm_spark.imaging.cv import cv2

    t = cv2.imdecode(np.frombuffer(summary.thumbnail(encode(big), 96), np.uint8), cv2.IMREAD_UNCHANGED)
    assert max(t.shape[:2]) == 96
    tiny = cv2.imdecode(np.frombuffer(summary.thumbnail(encode(np.zeros((28, 28), np.uint8)), 96), np.uint8),
                        cv2.IMREAD_UNCHANGED)
    assert tiny.shape[:2] == (84, 84)  # scaled up by whole pixels
    assert summary.thumbnail(b"not an image", 96) is None and summary.thumbnail(b"", 96) is None
    assert summary.channel_sums(b"junk") is None


def test_expected_cells_follow_the_splits_curated_is_asked_to_fill():
    ratios = {"train": 0.8, "val": 0.1, "test": 0.1}
    labels = ["T-shirt/top", "Bag"]
    filled = {"T-shirt/top/train", "T-shirt/top/test", "Bag/train", "Bag/test"}
    # kept source splits (Fashion-MNIST's train/test): no val to fill, nothing empty
    assert scorecard.cells(labels, {"train", "test"}, filled, ratios, "keep") == (["test", "train"], [])
    # split by ratio: val is expected, and empty for both labels ("T-shirt/top" split at its last "/")
    splits, empty = scorecard.cells(labels, {"train", "test"}, filled, ratios, "ignore")
    assert splits == ["test", "train", "val"] and empty == [("T-shirt/top", "val"), ("Bag", "val")]
    # a held split the ratios do not name still counts; a ratio of 0 is not expected
    splits, empty = scorecard.cells(["a"], {"train", "extra"}, {"a/train"}, {"train": 1.0, "val": 0.0}, "ignore")
    assert splits == ["extra", "train"] and empty == [("a", "extra")]


def test_a_constant_column_is_drawn_as_one_value_not_a_made_up_range():
    from ptdm_spark.analysis.report import plots

    ax = plots.histogram("width", [(28.0, 70000.0)], [("min_side", 8.0)]).axes[0]
    assert ax.get_title() == "width: all 70,000 = 28"
    lo, hi = ax.get_xlim()
    assert lo < 28 < hi and hi - lo < 30 and [t.get_text() for t in ax.get_xticklabels()] == ["28"]
