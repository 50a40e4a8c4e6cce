"""No EXIF (GPS, camera, date) of a source JPEG reaches the bytes ptdm stores in ``images.image``
and ``curated.image``, whatever format it normalizes to (PNG, the default, and JPEG).

The source JPEGs are made here with PIL's Exif (GPS position, make, model, date), and the test
first checks that PIL reads the GPS back from the source bytes, so that its absence afterwards
means something. The stored bytes are checked with PIL (no EXIF, no GPS IFD, no ``exif`` info)
and by searching them for the ``Exif`` marker, PNG's ``eXIf`` chunk and the tag values.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from tests.imagefiles import photo, pil_bytes

pytestmark = pytest.mark.spark

GPS_IFD = 0x8825
GPS = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.0)}
MAKE, MODEL, WHEN = "PtdmTestCam", "Model-X9", "2024:05:06 07:08:09"
SECRETS = (b"Exif", b"eXIf", MAKE.encode(), MODEL.encode(), WHEN.encode())


def _jpeg_with_gps(seed: int) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = MAKE
    exif[0x0110] = MODEL
    exif[0x0132] = WHEN
    exif[GPS_IFD] = GPS
    return pil_bytes(Image.fromarray(photo(seed, 40, 40)), "JPEG", quality=95, exif=exif.tobytes())


def _stored(spark, cfg, dataset: str, table: str, ids: set[str]) -> dict[str, bytes]:
    from pyspark.sql import functions as F

    df = spark.read.format("delta").load(cfg.lakehouse.table_path(dataset, table))
    rows = df.filter(F.col("image_id").isin(sorted(ids))).select("image_id", "image").collect()
    return {r.image_id: bytes(r.image) for r in rows}


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_no_exif_or_gps_in_stored_images(fmt, tmp_path, spark, cfg):
    from ptdm_spark.cli import main
    from tests.conftest import overrides_for

    src = tmp_path / "src"
    ids = set()
    for seed in range(4):
        data = _jpeg_with_gps(seed)
        # The source really carries GPS and the other tags, as PIL reads them.
        exif = Image.open(io.BytesIO(data)).getexif()
        assert exif.get_ifd(GPS_IFD) == GPS and exif[0x010F] == MAKE and exif[0x0132] == WHEN
        assert all(s in data for s in (b"Exif", MAKE.encode(), WHEN.encode()))
        p = src / ("cat" if seed % 2 else "dog") / f"{seed}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        ids.add(hashlib.sha256(data).hexdigest())
    dataset = f"exif_{fmt}"
    base = [a for o in overrides_for(Path(cfg.lakehouse.root)) for a in ("--set", o)]
    assert main(["run", *base, "--set", f"process.normalize.format={fmt}", str(src), "--dataset", dataset]) == 0

    for table in ("images", "curated"):
        stored = _stored(spark, cfg, dataset, table, ids)
        assert set(stored) == ids, table
        for image_id, data in stored.items():
            img = Image.open(io.BytesIO(data))
            assert img.format == fmt.upper()
            assert len(img.getexif()) == 0 and img.getexif().get_ifd(GPS_IFD) == {}, (table, image_id)
            assert "exif" not in img.info, (table, image_id)
            assert not [s for s in SECRETS if s in data], (table, image_id)
