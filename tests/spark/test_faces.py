"""``process.privacy.blur_faces`` through ``ptdm ingest`` + ``ptdm process``: the face count in
``images.faces``, the ``has_faces`` flag, and blurred pixels in ``images.image``, on real photos
from scikit-image's wheel (the astronaut has a face; a cup of coffee and a cat do not) and a
small synthetic image; plus an ``images`` table written before the ``faces`` column existed.

The expected counts are the detector's, run here on the source files' own pixels; the box the
stored bytes must differ in (and only in) is the one the detector finds on them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

# scikit-image is a dev dependency (scripts/setup.sh installs it): missing is a broken set-up, not a skip.
import skimage.data as skdata  # noqa: E402

DS = "faces"
MARGIN = 0.2  # base.yaml's process.privacy.margin


def _rgb(data: bytes) -> np.ndarray:
    from ptdm_spark.imaging.cv import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _old_images_row(spark, cfg, data: bytes, source_uri: str) -> None:
    """``images`` as an older ptdm wrote it: one processed image, no ``faces`` and no
    ``pixel_sums`` column (the process run after it adds both through the MERGE's schema
    evolution)."""
    from ptdm_spark import schemas
    from ptdm_spark.imaging.pipeline import Params, process_image
    from ptdm_spark.io import delta
    from ptdm_spark.transforms import process as t_process

    rec = process_image(data, Params.from_config(cfg.process))
    rec.update(image_id=hashlib.sha256(data).hexdigest(), label="old", labels=["old"], source_split=None,
               source_uri=source_uri, source_count=1)
    processed = spark.createDataFrame([tuple(rec[f.name] for f in schemas.PROCESSED_OUT.fields)],
                                      schemas.PROCESSED_OUT)
    old = t_process.images(processed, cfg.process.quality, "old-run")
    delta.merge_into(spark, old.drop("faces", "pixel_sums"), cfg.lakehouse.table_path(DS, "images"), ("image_id",))
    cols = spark.read.format("delta").load(cfg.lakehouse.table_path(DS, "images")).columns
    assert "faces" not in cols and "pixel_sums" not in cols


def test_blur_faces_counts_flags_and_blurs_only_the_faces(tmp_path, spark, cfg, ptdm):

    from ptdm_spark.imaging import faces

    files = {
        "people/astronaut.png": encode(skdata.astronaut()),
        "things/coffee.jpg": encode(skdata.coffee(), ".jpg"),
        "animals/chelsea.png": encode(skdata.chelsea()),
        "things/pattern.png": encode(photo(3, 40, 56)),
        "old/pattern.png": encode(photo(4, 48, 48)),  # processed by an "older ptdm": no faces column
    }
    src = tmp_path / "src"
    ids = {}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
        ids[rel] = hashlib.sha256(data).hexdigest()
    _old_images_row(spark, cfg, files["old/pattern.png"], (src / "old/pattern.png").as_uri())

    # ingest + process only: dedupe and curate copy images.image as it is (and cost a minute here).
    status, out = ptdm("ingest", str(src), "--dataset", DS)
    assert status == 0, out
    status, out = ptdm("process", "--dataset", DS, "--set", "process.privacy.blur_faces=true")
    assert status == 0, out
    assert "4 new image(s)" in out, out  # the old row is not processed again

    images = {r.image_id: r for r in spark.read.format("delta").load(cfg.lakehouse.table_path(DS, "images"))
              .select("image_id", "faces", "flags", "image", "pixel_sha256", "phash").collect()}
    assert set(images) == set(ids.values())
    expected = {rel: len(faces.detect(_rgb(files[rel]))) for rel in files if not rel.startswith("old/")}
    assert expected["people/astronaut.png"] >= 1 and expected["things/coffee.jpg"] == 0
    assert {rel: images[ids[rel]].faces for rel in expected} == expected
    assert images[ids["old/pattern.png"]].faces is None  # the old row: not searched
    sums = {r.image_id: r.pixel_sums for r in spark.read.format("delta").load(
        cfg.lakehouse.table_path(DS, "images")).select("image_id", "pixel_sums").collect()}
    assert sums[ids["old/pattern.png"]] is None  # the old row gained the column, NULL
    stored_px = _rgb(bytes(images[ids["things/pattern.png"]].image)).reshape(-1, 3).astype(np.float64) / 255
    assert np.allclose(sums[ids["things/pattern.png"]], [len(stored_px), *stored_px.sum(0), *(stored_px ** 2).sum(0)])
    flagged = {rel for rel, i in ids.items() if "has_faces" in images[i].flags}
    assert flagged == {"people/astronaut.png"}

    # The stored astronaut: blurred in every face box (grown by the margin), untouched outside.
    source = _rgb(files["people/astronaut.png"])
    row = images[ids["people/astronaut.png"]]
    stored = _rgb(bytes(row.image))
    assert stored.shape == source.shape
    outside = np.ones(source.shape[:2], dtype=bool)
    for f in faces.detect(source):
        inner = (slice(f.y, f.y + f.h), slice(f.x, f.x + f.w))
        diff = np.abs(stored[inner].astype(int) - source[inner].astype(int))
        assert diff.mean() > 5, diff.mean()
        dx, dy = round(f.w * MARGIN), round(f.h * MARGIN)
        outside[max(0, f.y - dy) : f.y + f.h + dy, max(0, f.x - dx) : f.x + f.w + dx] = False
    assert np.array_equal(stored[outside], source[outside])
    for rel in ("things/coffee.jpg", "animals/chelsea.png", "things/pattern.png"):  # no face: stored as decoded
        assert np.array_equal(_rgb(bytes(images[ids[rel]].image)), _rgb(files[rel])), rel

    # pixel_sha256 describes the stored (blurred) pixels; pHash the image as decoded.
    from ptdm_spark.imaging import normalize, quality

    assert row.pixel_sha256 == normalize.pixel_sha256(stored) != normalize.pixel_sha256(source)
    assert row.phash == quality.phash(quality.working_grey(source)[1])


def test_old_tables_without_faces_still_flag(spark, cfg):
    """``with_flags`` over an ``images`` frame without the column (preview over an older table)."""
    from ptdm_spark.transforms.process import with_flags

    row = dict(width=10, height=10, blur=100.0, brightness=0.5, contrast=0.2, entropy=6.0, channels=3,
               channel_spread=20.0)
    df = spark.createDataFrame([row])
    assert with_flags(df, cfg.process.quality).first().flags == []
    assert with_flags(df.withColumn("faces", df["width"] * 0 + 2), cfg.process.quality).first().flags == ["has_faces"]
    assert cfg.process.privacy.blur_faces is False  # off by default
