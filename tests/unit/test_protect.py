"""Backup/restore pieces that need no JVM: log entry versions, the manifest digest, locations, and
the CLI's misuse paths (which stop before a session starts)."""

from __future__ import annotations

import os

import pytest

from ptdm_spark.protect import backup
from ptdm_spark.protect.store import qualify


@pytest.mark.parametrize("name, version", [
    ("00000000000000000007.json", 7),
    ("00000000000000000010.checkpoint.parquet", 10),
    ("00000000000000000010.checkpoint.0000000001.0000000002.parquet", 10),
    ("00000000000000000012.crc", 12),
    ("00000000000000000003.00000000000000000009.compacted.json", 9),
    ("_last_checkpoint", None),
    ("7d3c.parquet", None),
])
def test_log_version(name, version):
    assert backup._log_version(name) == version


def test_hidden_side_files_are_not_table_files():
    assert backup._hidden("_delta_log/.00000000000000000001.json.crc")
    assert backup._hidden(".part-0.parquet.crc")
    assert not backup._hidden("_delta_log/00000000000000000001.crc")
    assert not backup._hidden("label=a/part-0.parquet")


def test_digest_covers_everything_but_itself():
    m = {"format": backup.FORMAT, "tables": {"images": {"version": 3, "files": [{"path": "a", "size": 1, "sha256": "x"}]}}}
    m["digest"] = backup.digest(m)
    assert backup.digest(m) == m["digest"]
    m["tables"]["images"]["version"] = 4
    assert backup.digest(m) != m["digest"]


def test_object_and_manifest_names():
    sha = "ab" + "0" * 62
    assert backup.object_rel(sha) == f"objects/ab/{sha}"
    assert backup.manifest_rel("fashion", "20261201T000000Z-backup-1") == "manifests/fashion/20261201T000000Z-backup-1.json"


def test_qualify():
    assert qualify("hdfs://nn:9000/b/") == "hdfs://nn:9000/b"
    assert qualify("rel/dir") == "file://" + os.path.abspath("rel/dir")
    assert qualify("/abs") == "file:///abs"


@pytest.mark.parametrize("argv, says", [
    (["restore", "--dataset", "d"], "expected --from URI"),
    (["restore", "--dataset", "d", "--table", "images"], "--table and --version go together"),
    (["restore", "--dataset", "d", "--table", "images", "--version", "1", "--from", "/b"], "in place"),
    (["restore", "--dataset", "d", "--from", "/b", "--as", "Bad-Name"], "--dataset 'Bad-Name'"),
    (["backup", "--dataset", "Bad", "--to", "/b"], "--dataset 'Bad'"),
])
def test_misuse_is_one_line_and_exit_2(argv, says, capsys):
    from ptdm_spark.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
