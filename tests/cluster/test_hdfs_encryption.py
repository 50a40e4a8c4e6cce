"""HDFS transparent encryption: a dataset written into an encryption zone (keys in the Hadoop KMS
that scripts/hdfs.sh starts beside the NameNode) reads back as it was written, and no block file
on the DataNodes' disks holds a PNG or JPEG signature of it — while a plain copy of the same files,
made with Hadoop's own shell, does (so the scan finds what is there)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.cluster, pytest.mark.hdfs, pytest.mark.spark]

# The PNG signature, and the start of a JFIF JPEG (what OpenCV and most cameras' software write):
# long enough that a hit in ciphertext would not be chance.
SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"}


def hdfs_dir() -> Path:
    return Path(os.environ.get("PTDM_HDFS_DIR", "/tmp/ptdm-hdfs"))


def script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / "hdfs.sh"), *args], capture_output=True, text=True, timeout=300)


def hadoop_shell(*args: str) -> subprocess.CompletedProcess:
    """Hadoop's own `hdfs dfs` (FsShell), as a user of the cluster would run it."""
    cp = f"{hdfs_dir() / 'conf'}:{ROOT / '.hadoop' / 'lib'}/*"
    return subprocess.run(["java", f"-Dhadoop.log.file={hdfs_dir() / 'logs' / 'test-shell.log'}", "-cp", cp,
                           "org.apache.hadoop.fs.FsShell", *args], capture_output=True, text=True, timeout=300)


def block_files(path: str) -> list[Path]:
    """The DataNodes' block files of every file under the HDFS folder `path` (Hadoop's fsck names
    the blocks; each must be found on disk, once per replica)."""
    proc = script("fsck", path)
    ids = set(re.findall(r"blk_(\d+)_\d+", proc.stdout))
    assert ids, proc.stdout + proc.stderr
    found = [p for d in hdfs_dir().glob("data*") for p in d.rglob("blk_*")
             if not p.name.endswith(".meta") and p.name[len("blk_"):] in ids]
    assert {p.name[len("blk_"):] for p in found} == ids
    assert len(found) == 2 * len(ids)  # replication 2: both DataNodes hold every block
    return found


def signatures_in(files: list[Path]) -> dict[str, int]:
    data = [p.read_bytes() for p in files]
    return {kind: sum(d.count(sig) for d in data) for kind, sig in SIGNATURES.items()}


def test_dataset_in_an_encryption_zone_is_ciphertext_on_the_datanodes(hdfs, spark, ptdm_module, tmp_path):
    zone = f"/zone-{uuid.uuid4().hex[:8]}"
    made = script("zone", f"{hdfs}{zone}", "ptdm-test")
    assert made.returncode == 0 and "is an encryption zone" in made.stdout, made.stdout + made.stderr
    again = script("zone", zone, "ptdm-test")
    assert again.returncode == 0 and "already an encryption zone" in again.stdout, again.stdout + again.stderr

    local = tmp_path / "photos"
    files = {f"cats/{i}.png": encode(photo(40 + i)) for i in range(3)}
    files |= {f"dogs/_DSC00{i}.JPG": encode(photo(50 + i), ".jpg") for i in range(3)}
    for rel, data in files.items():
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(data)
    root = f"{hdfs}{zone}/lakehouse"
    status, out = ptdm_module("run", str(local), "--dataset", "zoned", "--set", f"lakehouse.root={root}")
    assert status == 0, out

    # reads back as written: the source bytes, and the stored pixels are the sources' pixels
    raw = spark.read.format("delta").load(f"{root}/zoned/raw_images").collect()
    assert {r.source_uri.split("/photos/", 1)[1]: bytes(r.content) for r in raw} == files
    curated = spark.read.format("delta").load(f"{root}/zoned/curated").collect()
    by_id = {hashlib.sha256(data).hexdigest(): rel for rel, data in files.items()}
    assert {r.image_id for r in curated} == set(by_id)
    for r in curated:
        stored = cv2.imdecode(np.frombuffer(bytes(r.image), "uint8"), cv2.IMREAD_COLOR)
        source = cv2.imdecode(np.frombuffer(files[by_id[r.image_id]], "uint8"), cv2.IMREAD_COLOR)
        assert (stored == source).all(), by_id[r.image_id]

    # on disk: every block of every file of the dataset (data files, Delta logs, checkpoints)
    in_zone = block_files(f"{zone}/lakehouse")
    assert signatures_in(in_zone) == {"png": 0, "jpeg": 0}

    # the control: the same files copied out of the zone by Hadoop's shell (decrypted on the way)
    plain = f"/plain-{uuid.uuid4().hex[:8]}"
    cp = hadoop_shell("-cp", f"{zone}/lakehouse", plain)
    assert cp.returncode == 0, cp.stderr[-2000:]
    found = signatures_in(block_files(plain))
    assert found["png"] >= 3 and found["jpeg"] >= 1, found

    # a folder that holds files cannot become a zone: one line, nothing changed
    refused = script("zone", plain)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "could not make" in refused.stderr
