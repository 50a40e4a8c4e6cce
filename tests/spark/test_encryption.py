"""Encryption at rest: one ``ptdm run`` with ``security.encryption.mode=parquet`` over a few PNGs
written here, then the files on disk are looked at without ptdm.

Independent truth: the PNG bytes the test wrote and their SHA-256 (= image_id). Without keys,
pyarrow cannot open a data file of ``raw_images``, ``images``, ``curated`` or ``runs`` (encrypted
footer), and no file holds a PNG signature; with the keys (the session, and pyarrow with the
Python KMS client) the rows are the images written. A read without the key, or with another key
under the same names, is one line.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ptdm_spark.protect import encryption
from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

PNG = b"\x89PNG\r\n\x1a\n"
# runs and the analysis tables are small tables written on the driver: deltalake would write them
# unencrypted, so an encrypted lakehouse must take Spark's path for them.
TABLES = ("raw_images", "images", "curated", "runs", "stats", "correlations", "scorecard")


def _data_files(table: Path) -> list[Path]:
    return sorted(p for p in table.rglob("*.parquet") if "_delta_log" not in p.parts)


def _keys(path: Path) -> Path:
    path.write_text(f"# test keys\nfooter: {base64.b64encode(os.urandom(32)).decode()}\n"
                    f"images: {base64.b64encode(os.urandom(16)).decode()}\n")
    return path


def test_encrypted_run_unreadable_without_keys_same_rows_with_them(tmp_path, spark, cfg, ptdm):
    from pyspark.sql import functions as F

    from ptdm_spark.config import load_config

    src = tmp_path / "src"
    written: dict[str, bytes] = {}
    for seed in range(4):
        data = encode(photo(seed, 40, 48), ".png")
        p = src / ("cat" if seed % 2 else "dog") / f"{seed}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written[hashlib.sha256(data).hexdigest()] = data
    key_file = _keys(tmp_path / "keys")
    on = ["--set", "security.encryption.mode=parquet", "--set", f"security.encryption.key_file={key_file}"]
    dataset = "crypt"
    root = Path(cfg.lakehouse.root).expanduser().resolve() / dataset
    off = cfg.security.encryption
    # A Delta checkpoint every 2 commits (tables created by this run), so that there are some to look at.
    interval = "spark.databricks.delta.properties.defaults.checkpointInterval"
    spark.conf.set(interval, "2")
    try:
        status, out = ptdm("run", str(src), "--dataset", dataset, "--analyze", *on)
        assert status == 0, out
        assert "accounting adds up" in out

        # On disk, without keys: no footer opens, no PNG signature anywhere (normalized or source).
        for table in TABLES:
            files = _data_files(root / table)
            assert files, f"{table} has no data files"
            for f in files:
                with pytest.raises(OSError, match="encrypted"):
                    pq.ParquetFile(f)
                blob = f.read_bytes()
                assert blob.endswith(b"PARE"), f"{f}: not an encrypted-footer Parquet file"
                assert PNG not in blob and not any(d[16:48] in blob for d in written.values())
        # Every commit of the analysis tables is Spark's (deltalake cannot encrypt), outliers too.
        for table in ("stats", "correlations", "outliers", "scorecard"):
            commits = sorted((root / table / "_delta_log").glob("*.json"))
            assert commits and not any("delta-rs" in c.read_text() for c in commits), table
        checkpoints = sorted(root.glob("*/_delta_log/*.checkpoint.parquet"))
        assert "runs" in {c.parent.parent.name for c in checkpoints}
        for c in checkpoints:  # Delta checkpoints stay plaintext (no image bytes; deltalake reads them)
            blob = c.read_bytes()
            assert pq.ParquetFile(c).metadata.num_rows > 0 and PNG not in blob

        # With the keys, the same session reads the images the test wrote.
        raw = spark.read.format("delta").load(str(root / "raw_images")).select("image_id", "content").collect()
        assert {r.image_id: bytes(r.content) for r in raw} == written
        curated = spark.read.format("delta").load(str(root / "curated")).select("image_id", "image").collect()
        assert {r.image_id for r in curated} == set(written)
        assert all(bytes(r.image).startswith(PNG) for r in curated)

        # pyarrow with the Python twin of the KMS client opens the same files.
        keys = encryption.read_key_file(key_file)
        got = {}
        for f in _data_files(root / "raw_images"):
            t = encryption.open_parquet(f, keys).read(columns=["image_id", "content"])
            got.update(zip(t.column("image_id").to_pylist(), t.column("content").to_pylist()))
        assert got == written

        # The sharing server's view: each file decrypted once, handed out as plain Parquet.
        from ptdm_spark.sharing.server import PlainFiles

        plain = PlainFiles(keys)
        try:
            served_ids = []
            for f in _data_files(root / "curated"):
                served, size = plain.get(f.as_uri(), f.stat().st_size)
                assert Path(served).parent == plain.dir and Path(served).stat().st_size == size
                t = pq.read_table(served)  # no keys needed
                served_ids += t.column("image_id").to_pylist()
                assert all(bytes(b).startswith(PNG) for b in t.column("image").to_pylist())
            assert sorted(served_ids) == sorted(written)
        finally:
            plain.close()
        assert not plain.dir.exists()

        # The loader (no JVM), with the key file.
        from deltalake import DeltaTable

        from ptdm_spark.sharing.loader import CuratedDataset

        ds = CuratedDataset(str(root.parent), dataset, version=DeltaTable(str(root / "curated")).version(),
                            split=None, decode=False, key_file=str(key_file))
        assert sorted(ds.image_ids) == sorted(written)
        assert all(ds[i][0].startswith(PNG) for i in range(len(ds)))

        # spark-sql, a JVM of its own, with the properties of `ptdm spark-conf` (the key file's
        # path, the crypto classes, Spark's I/O encryption); its catalog in a folder of its own
        # (the test session holds the shared one), the table by path.
        import subprocess
        import sys

        import pyspark

        from tests.conftest import ROOT, run_cli

        props = run_cli("spark-conf", "--set", f"lakehouse.root={tmp_path / 'sql-lh'}", *on)
        assert props.returncode == 0, props.stderr[-2000:]
        assert "spark.io.encryption.enabled true" in props.stdout.splitlines()
        (tmp_path / "spark.conf").write_text(props.stdout)
        spark_sql = Path(sys.executable).parent / "spark-sql"
        proc = subprocess.run(
            [str(spark_sql), "--properties-file", str(tmp_path / "spark.conf"), "-S", "-e",
             f"SELECT image_id, sha2(image, 256) FROM delta.`{root / 'curated'}` ORDER BY image_id"],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
            env={**os.environ, "SPARK_HOME": os.path.dirname(pyspark.__file__)})
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = [ln.split("\t") for ln in proc.stdout.strip().splitlines()]
        assert rows == sorted([r.image_id, hashlib.sha256(bytes(r.image)).hexdigest()] for r in curated)

        # Another key under the same names: a clear line, not the images.
        wrong = load_config(overrides=[f"lakehouse.root={cfg.lakehouse.root}", "security.encryption.mode=parquet",
                                       f"security.encryption.key_file={_keys(tmp_path / 'other-keys')}"])
        encryption.apply(spark, wrong.security.encryption)
        with pytest.raises(Exception) as err:
            spark.read.format("delta").load(str(root / "curated")).select("image").collect()
        assert "does not open this file's keys" in (encryption.crypto_error(err.value) or "")
    finally:
        encryption.apply(spark, off)  # the shared session encrypts nothing for the other tests
        spark.conf.unset(interval)

    # Without keys: Spark cannot read the image bytes, and ptdm says so in one line.
    with pytest.raises(Exception) as err:
        spark.read.format("delta").load(str(root / "raw_images")).select(F.col("content")).collect()
    line = encryption.crypto_error(err.value)
    assert line and line.startswith("a table is encrypted (Parquet modular encryption)"), str(err.value)[:500]
    status, out = ptdm("sql", f"SELECT image_id, image FROM {dataset}.curated")
    assert status == 2
    errors = [ln for ln in out.splitlines() if ln.startswith("ptdm sql")]
    assert len(errors) == 1 and re.fullmatch(
        r"ptdm sql: error: a table is encrypted \(Parquet modular encryption\) \(file:\S+/crypt/curated/part-\S+\.parquet\) "
        r"and this session has no key for it: set security\.encryption\.mode=parquet and security\.encryption\.key_file=PATH",
        errors[0]), out[-2000:]
    # Every command that reads the rows stops the same way before any Spark job (no task-failure
    # log first): the check of base.require_dataset. Metadata-only commands still answer.
    for command in (("analyze", "--dataset", dataset), ("export", "--dataset", dataset, "--release", "x",
                                                          "--format", "csv", "--out", str(tmp_path / "x"))):
        status, out = ptdm(*command)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        assert status == 2 and len(lines) == 1 and re.fullmatch(
            rf"ptdm {command[0]}: error: \S+/crypt/raw_images is encrypted \(Parquet modular encryption\) and this "
            r"command has no key for it: set security\.encryption\.mode=parquet and security\.encryption\.key_file=PATH",
            lines[0]), out[-2000:]
    status, out = ptdm("history", dataset, "raw_images")
    assert status == 0 and "ptdm history: error" not in out, out[-2000:]
