"""``ptdm audit`` and the share commands on a small lakehouse written here with deltalake (no Spark):
a dataset with a runs table, a curated table with two commits and a release row; then share create,
grant, revoke and drop through the CLI, and the timeline."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

pytestmark = pytest.mark.unit

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def lh(tmp_path):
    from deltalake import CommitProperties, write_deltalake

    root = tmp_path / "lh"
    ds = root / "toy"
    ts = pa.timestamp("us", tz="UTC")
    runs = pa.table({"run_id": ["r1", "r2"], "job": ["ingest", "release"],
                     "started_at": pa.array([T0, T0 + dt.timedelta(hours=1)], ts),
                     "finished_at": pa.array([T0 + dt.timedelta(seconds=30), T0 + dt.timedelta(hours=1, seconds=5)], ts),
                     "status": ["succeeded", "succeeded"], "user": ["ann", "ann"], "host": ["vm", "vm"], "args": ["x", "y"]})
    write_deltalake(str(ds / "runs"), runs)
    cur = pa.table({"image_id": ["a", "b"], "label": ["x", "y"], "split": ["train", "test"]})
    write_deltalake(str(ds / "curated"), cur, commit_properties=CommitProperties(
        custom_metadata={"userMetadata": json.dumps({"run_id": "r1", "job": "curate"})}))
    write_deltalake(str(ds / "curated"), cur.slice(0, 1), mode="append")
    rel = pa.table({"name": ["v1"], "dataset": ["toy"],
                    "table_versions": pa.array([[("curated", 0), ("runs", 0)]], pa.map_(pa.string(), pa.int64())),
                    "classes": pa.array([[{"label": "x", "index": 0}]],
                                        pa.list_(pa.struct([("label", pa.string()), ("index", pa.int32())])))})
    write_deltalake(str(ds / "releases"), rel)
    return root


def _ptdm(root, *args):
    from ptdm_spark.cli import main

    return main([args[0], "--set", f"lakehouse.root={root}", *args[1:]])


def test_share_commands_and_audit_timeline(lh, tmp_path, capsys):
    from ptdm_spark.sharing import audit, shares, tokens

    assert _ptdm(lh, "share", "create", "toy1", "--dataset", "toy", "--release", "v1") == 0
    assert _ptdm(lh, "share", "create", "toy1", "--dataset", "toy", "--release", "v1") == 2  # exists
    assert _ptdm(lh, "share", "create", "bad", "--dataset", "toy", "--release", "v1", "--tables", "nope") == 2
    assert _ptdm(lh, "share", "grant", "toy1", "--recipient", "lab", "--out", str(tmp_path / "p.share"),
                 "--endpoint", "http://h:1/delta-sharing", "--expires", "2h") == 0
    prof = json.loads((tmp_path / "p.share").read_text())
    assert set(prof) == {"shareCredentialsVersion", "endpoint", "bearerToken", "expirationTime"}
    (row,) = shares.read(str(lh), "share_recipients")
    assert tokens.verify_token(prof["bearerToken"], row["salt"], row["hash"]) and row["shares"] == ["toy1"]
    (share,) = shares.read(str(lh), "shares")
    assert share["tables"] == [{"name": "curated", "version": 0}]  # the release's version, not the live 1
    assert _ptdm(lh, "share", "revoke", "--recipient", "lab") == 0
    assert _ptdm(lh, "share", "revoke", "--recipient", "lab") == 2  # nothing live left
    capsys.readouterr()
    assert _ptdm(lh, "audit", "--dataset", "toy", "--format", "json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("run") == 2 and kinds.count("share") == 1 and kinds.count("grant") == 1 and kinds.count("revoke") == 1
    commits = [e["what"] for e in events if e["kind"] == "commit"]
    assert {"curated@0", "curated@1", "runs@0", "releases@0"} <= set(commits)
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    later = audit.timeline(str(lh), "toy", since=T0 + dt.timedelta(minutes=30))
    assert [e["what"] for e in later if e["kind"] == "run"] == ["release"]
    assert _ptdm(lh, "share", "drop", "toy1") == 0
    assert shares.read(str(lh), "shares") == []
    assert _ptdm(lh, "audit", "--dataset", "nope") == 2


def test_audit_of_an_encrypted_dataset_reads_runs_with_the_key(lh, tmp_path, capsys):
    """The runs table encrypted at rest (its file rewritten with Parquet modular encryption): the
    timeline reads it with the key file; without one, ``ptdm audit`` is one line and exit 2."""
    import base64
    import os

    from tests.unit.test_encryption import _encrypt_in_place

    keys = {"footer": os.urandom(32), "images": os.urandom(32)}
    for f in (lh / "toy" / "runs").glob("*.parquet"):
        _encrypt_in_place(f, {"footer": keys["footer"]})
        # the log's size of the file, as Spark would have written it for the encrypted file
        for commit in (lh / "toy" / "runs" / "_delta_log").glob("*.json"):
            lines = [json.loads(x) for x in commit.read_text().splitlines()]
            for a in lines:
                if "add" in a and a["add"]["path"] == f.name:
                    a["add"]["size"] = f.stat().st_size
            commit.write_text("".join(json.dumps(a) + "\n" for a in lines))
    key_file = tmp_path / "keys"
    key_file.write_text("".join(f"{k}: {base64.b64encode(v).decode()}\n" for k, v in keys.items()))
    on = ("--set", "security.encryption.mode=parquet", "--set", f"security.encryption.key_file={key_file}")
    capsys.readouterr()
    assert _ptdm(lh, "audit", "--dataset", "toy", "--format", "json", *on) == 0
    runs = [json.loads(x) for x in capsys.readouterr().out.splitlines() if '"kind": "run"' in x]
    assert sorted(r["what"] for r in runs) == ["ingest", "release"]
    assert _ptdm(lh, "audit", "--dataset", "toy") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ptdm audit: error: a table is encrypted (Parquet modular encryption) and this session has no key "
                   "for it: set security.encryption.mode=parquet and security.encryption.key_file=PATH"]
