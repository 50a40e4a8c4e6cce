"""Augmentation ops with known answers, and the seeding that makes a copy reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ptdm_spark.imaging import augment as A
from tests.imagefiles import encode, photo

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent.parent


def test_two_flips_are_the_identity_and_one_is_not():
    img = photo(1)
    for flip in (A.hflip, A.vflip):
        once = flip(img)
        assert not np.array_equal(once, img)
        assert np.array_equal(flip(once), img)
    assert np.array_equal(A.hflip(img)[:, 0], img[:, -1])
    assert np.array_equal(A.vflip(img)[0], img[-1])


def test_rotate_by_zero_is_the_identity_and_by_90_matches_numpy():
    img = photo(2, 48, 48)
    assert np.array_equal(A.rotate(img, 0.0), img)
    # A square image turned 90 degrees counter-clockwise about its centre is numpy's rot90.
    assert np.array_equal(A.rotate(img, 90.0), np.rot90(img))


def test_jitter_of_zero_strength_is_the_identity():
    img = photo(3)
    assert np.array_equal(A.color_jitter(img, 1.0, 1.0, 1.0, 0.0), img)
    out = A.apply_op("color_jitter", {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}, img)
    assert np.array_equal(out, img)
    # brightness 0.5 halves every value (rounded)
    assert np.array_equal(A.color_jitter(img, brightness=0.5), np.rint(img * 0.5).astype(np.uint8))
    # saturation 0 makes every pixel grey
    grey = A.color_jitter(img, saturation=0.0)
    assert np.abs(grey.astype(int) - grey[:, :, :1].astype(int)).max() <= 1


def test_noise_has_the_configured_std():
    img = np.full((200, 200, 3), 128, np.uint8)
    out = A.gaussian_noise(img, 10.0, noise_seed=7)
    diff = out.astype(np.float64) - 128
    assert abs(diff.std() - 10.0) < 0.2
    assert abs(diff.mean()) < 0.2
    assert np.array_equal(A.gaussian_noise(img, 10.0, 7), out)  # its own seed: reproducible


def test_blur_crop_and_jpeg_known_answers():
    flat = np.full((32, 40, 3), 77, np.uint8)
    assert np.array_equal(A.gaussian_blur(flat, 1.5), flat)  # a flat image stays flat
    img = photo(4)
    assert A.gaussian_blur(img, 2.0).astype(float).std() < img.astype(float).std()
    box = A.resized_crop(img, 10, 5, 20, 30, 20, 30)
    assert np.array_equal(box, img[5:35, 10:30])
    assert A.resized_crop(img, 0, 0, 48, 32, 96, 64).shape == (64, 96, 3)
    low, high = A.jpeg_recompress(img, 20), A.jpeg_recompress(img, 98)
    err = lambda a: np.abs(a.astype(int) - img.astype(int)).mean()  # noqa: E731
    assert err(high) < err(low)


RECIPE = {
    "name": "t", "seed": 5, "copies": 2,
    "ops": [{"op": "hflip", "p": 0.5}, {"op": "rotate", "degrees": 15},
            {"op": "random_resized_crop", "scale": [0.5, 1.0]},
            {"op": "color_jitter", "brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.1},
            {"op": "gaussian_noise", "std": [1, 5]}, {"op": "gaussian_blur", "sigma": [0.2, 1.0], "p": 0.5}],
}


def test_a_copy_depends_on_seed_source_and_copy_only_and_replays_from_its_params():
    r = A.Recipe.from_mapping(RECIPE)
    data = encode(photo(6))
    a = A.augment(data, r, 5, "src1", 0)
    assert a.error is None and a.encoding == "png" and (a.width, a.height) == (96, 64)
    assert A.augment(data, r, 5, "src1", 0) == a
    others = {A.augment(data, r, s, src, c).image for s, src, c in ((6, "src1", 0), (5, "src2", 0), (5, "src1", 1))}
    assert a.image not in others and len(others) == 3
    # the recorded params replay the same pixels, op by op
    rgb = A.decode_rgb(data)
    for step in json.loads(a.params):
        rgb = A.apply_op(step.pop("op"), step, rgb)
    assert np.array_equal(rgb, A.decode_rgb(a.image))


def test_last_jpeg_op_gives_jpeg_bytes_and_bad_input_is_an_error_value():
    r = A.Recipe.from_mapping({"name": "j", "ops": [{"op": "jpeg", "quality": 50}]})
    a = A.augment(encode(photo(7)), r, 0, "x", 0)
    assert a.encoding == "jpeg" and a.image[:2] == b"\xff\xd8"
    assert json.loads(a.params) == [{"op": "jpeg", "quality": 50}]
    assert A.augment(b"not an image", r, 0, "x", 0).error == "does not decode"


@pytest.mark.parametrize("bad, words", [
    ({"ops": [{"op": "twirl"}]}, "unknown op"),
    ({"ops": [{"op": "rotate", "angle": 3}]}, "ops[0] (rotate).angle: unknown key"),
    ({"ops": [{"op": "hflip", "p": 2}]}, "ops[0] (hflip).p"),
    ({"ops": []}, "ops: expected a non-empty list"),
    ({"copies": 0, "ops": [{"op": "hflip"}]}, "copies"),
    ({"ops": [{"op": "jpeg", "quality": [90, 50]}]}, "quality"),
])
def test_bad_recipes_are_named(bad, words):
    with pytest.raises(A.RecipeError, match=None) as exc:
        A.Recipe.from_mapping(bad)
    assert words in str(exc.value)


def test_shipped_basic_recipe_parses_and_round_trips():
    r = A.Recipe.from_yaml((ROOT / "conf/augment/basic.yaml").read_text())
    assert r.name == "basic" and {o.kind for o in r.ops} >= {"hflip", "rotate", "random_resized_crop", "color_jitter"}
    assert A.Recipe.from_json(r.to_json()) == r


def test_class_indices_never_shift_when_classes_are_added():
    from ptdm_spark.transforms.labels import class_indices

    first = class_indices({}, ["cats", "ants", "bees"])
    assert first == {"ants": 0, "bees": 1, "cats": 2}  # one run: name order
    later = class_indices(first, ["aardvarks", "cats", "wasps"])  # ants and bees have no images left
    assert later == {"ants": 0, "bees": 1, "cats": 2, "aardvarks": 3, "wasps": 4}
    assert class_indices({"x": 7}, ["y"]) == {"x": 7, "y": 8}  # after the largest, never reused
