"""Shares, recipients and the access log of the Delta Sharing server: lakehouse-level Delta tables
under ``<lakehouse.root>/_sharing/`` (a share names a dataset, so they live above the datasets),
read and written with the ``deltalake`` package (no Spark: the server and these commands start no JVM).

- ``_sharing/shares``: one row per share: ``name``, ``id`` (a UUID), ``dataset``, ``release``,
  ``tables`` (name and Delta version of every exposed table: the release's versions, never the live
  ones), ``created_at``, ``created_by``, ``comment``. ``ptdm share drop`` deletes the row.
- ``_sharing/share_recipients``: one row per token: ``token_id``, ``recipient``, ``shares`` (granted
  with this token), ``salt``/``hash``/``kdf`` (the token's secret is never stored), ``created_at``,
  ``expires_at`` (NULL: never), ``revoked_at`` (NULL: live), ``created_by``. A token sees the shares
  its recipient holds through any live token; ``ptdm share revoke`` revokes every token of a recipient.
- ``_sharing/access_log``: one row per HTTP request the server answered (see server.py).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.sharing import tokens

AREA = "_sharing"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
DEFAULT_TABLES = ("curated",)

TS = pa.timestamp("us", tz="UTC")
SHARES = pa.schema([
    ("name", pa.string()), ("id", pa.string()), ("dataset", pa.string()), ("release", pa.string()),
    ("tables", pa.list_(pa.struct([("name", pa.string()), ("version", pa.int64())]))),
    ("created_at", TS), ("created_by", pa.string()), ("comment", pa.string()),
])
RECIPIENTS = pa.schema([
    ("token_id", pa.string()), ("recipient", pa.string()), ("shares", pa.list_(pa.string())),
    ("salt", pa.string()), ("hash", pa.string()), ("kdf", pa.string()),
    ("created_at", TS), ("expires_at", TS), ("revoked_at", TS), ("created_by", pa.string()),
])
ACCESS_LOG = pa.schema([
    ("time", TS), ("recipient", pa.string()), ("token_id", pa.string()), ("dataset", pa.string()),
    ("share", pa.string()), ("schema", pa.string()), ("table", pa.string()), ("version", pa.int64()),
    ("method", pa.string()), ("path", pa.string()), ("status", pa.int32()), ("files", pa.int64()),
    ("bytes", pa.int64()), ("client", pa.string()), ("user_agent", pa.string()), ("elapsed_ms", pa.float64()),
])
TABLES = {"shares": SHARES, "share_recipients": RECIPIENTS, "access_log": ACCESS_LOG}


def check_name(kind: str, name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise UsageError(f"{kind} name {name!r}: use letters, digits, '_' and '-' (up to 128), "
                         "starting with a letter or digit")
    return name


def area_uri(root: str) -> str:
    from ptdm_spark.sharing.loader import _table_uri

    return _table_uri(root, AREA, "").rstrip("/")


def table_uri(root: str, table: str) -> str:
    return f"{area_uri(root)}/{table}"


def dataset_table_uri(root: str, dataset: str, table: str) -> str:
    from ptdm_spark.sharing.loader import _table_uri

    return _table_uri(root, dataset, table)


def _root(cfg: Config) -> str:
    return cfg.lakehouse.root


def read(root: str, table: str) -> list[dict[str, Any]]:
    """Every row of a ``_sharing`` table as dicts ([] when it does not exist yet)."""
    from deltalake import DeltaTable

    uri = table_uri(root, table)
    if not DeltaTable.is_deltatable(uri):
        return []
    return DeltaTable(uri).to_pyarrow_table().to_pylist()


def append(root: str, table: str, rows: list[dict[str, Any]], what: str) -> None:
    from deltalake import CommitProperties, write_deltalake

    data = pa.Table.from_pylist(rows, schema=TABLES[table])
    write_deltalake(table_uri(root, table), data, mode="append",
                    commit_properties=CommitProperties(custom_metadata={"job": what, "user": _user()}))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- shares ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    name: str
    id: str
    dataset: str
    release: str
    tables: dict[str, int]  # table -> Delta version
    created_at: dt.datetime
    created_by: str | None
    comment: str | None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> "Share":
        return cls(r["name"], r["id"], r["dataset"], r["release"], {t["name"]: int(t["version"]) for t in r["tables"]},
                   r["created_at"], r["created_by"], r["comment"])


def all_shares(root: str) -> list[Share]:
    return sorted((Share.from_row(r) for r in read(root, "shares")), key=lambda s: s.name)


def get_share(root: str, name: str) -> Share:
    for s in all_shares(root):
        if s.name == name:
            return s
    known = ", ".join(s.name for s in all_shares(root)) or "none yet"
    raise UsageError(f"no share {name!r} (known: {known}; create one with: ptdm share create NAME --dataset D --release R)")


def readable_problem(uri: str, version: int) -> str | None:
    """Why the Delta table at ``uri``/``version`` cannot be served as plain Parquet files (None: it can)."""
    from deltalake import DeltaTable

    t = DeltaTable(uri, version=version)
    if "deletionVectors" in set(t.protocol().reader_features or []):
        return "uses deletion vectors"
    if (t.metadata().configuration or {}).get("delta.columnMapping.mode", "none") != "none":
        return "uses column mapping"
    return None


def create_share(cfg: Config, name: str, dataset: str, release: str, tables: list[str], comment: str | None) -> Share:
    from ptdm_spark.protect import encryption
    from ptdm_spark.sharing.loader import find_release

    check_name("share", name)
    root = _root(cfg)
    if any(s.name == name for s in all_shares(root)):
        raise UsageError(f"share {name!r} exists already (ptdm share drop {name} first, or choose another name)")
    try:
        rel = find_release(root, dataset, release, keys=encryption.check(cfg.security.encryption))
    except LookupError as exc:
        raise UsageError(f"{exc} (create it with: ptdm release create {release} --dataset {dataset})") from None
    versions = rel["table_versions"]
    missing = [t for t in tables if t not in versions]
    if missing:
        raise UsageError(f"release {release!r} of {dataset!r} has no table {missing[0]!r} "
                         f"(it has: {', '.join(sorted(versions))})")
    for t in tables:
        problem = readable_problem(dataset_table_uri(root, dataset, t), int(versions[t]))
        if problem:
            raise UsageError(f"table {dataset}.{t} {problem}: the share server hands out whole Parquet files only")
    row = {"name": name, "id": str(uuid.uuid4()), "dataset": dataset, "release": release,
           "tables": [{"name": t, "version": int(versions[t])} for t in tables],
           "created_at": _now(), "created_by": _user(), "comment": comment}
    append(root, "shares", [row], "share create")
    return Share.from_row(row)


def drop_share(cfg: Config, name: str) -> None:
    from deltalake import CommitProperties, DeltaTable

    get_share(_root(cfg), name)  # UsageError when unknown
    DeltaTable(table_uri(_root(cfg), "shares")).delete(
        f"name = '{name}'", commit_properties=CommitProperties(custom_metadata={"job": "share drop", "user": _user()}))


# --- recipients ------------------------------------------------------------------------------------


def grant(cfg: Config, share: str, recipient: str, expires: dt.datetime | None, endpoint: str) -> tuple[dict[str, Any], str]:
    """A new token for ``recipient`` granting ``share``: (the profile file's JSON, token_id)."""
    check_name("recipient", recipient)
    get_share(_root(cfg), share)
    tok = tokens.new_token()
    row = {"token_id": tok.token_id, "recipient": recipient, "shares": [share], "salt": tok.salt, "hash": tok.hash,
           "kdf": tok.kdf, "created_at": _now(), "expires_at": expires, "revoked_at": None, "created_by": _user()}
    append(_root(cfg), "share_recipients", [row], "share grant")
    profile: dict[str, Any] = {"shareCredentialsVersion": 1, "endpoint": endpoint, "bearerToken": tok.token}
    if expires is not None:
        profile["expirationTime"] = tokens.iso_utc(expires)
    return profile, tok.token_id


def revoke(cfg: Config, recipient: str) -> int:
    """Revoke every live token of ``recipient``; returns how many."""
    from deltalake import CommitProperties, DeltaTable

    check_name("recipient", recipient)
    live = [r for r in read(_root(cfg), "share_recipients") if r["recipient"] == recipient and r["revoked_at"] is None]
    if not live:
        known = sorted({r["recipient"] for r in read(_root(cfg), "share_recipients")})
        raise UsageError(f"recipient {recipient!r} has no live token (recipients: {', '.join(known) or 'none'})")
    DeltaTable(table_uri(_root(cfg), "share_recipients")).update(
        predicate=f"recipient = '{recipient}' AND revoked_at IS NULL", new_values={"revoked_at": _now()},
        commit_properties=CommitProperties(custom_metadata={"job": "share revoke", "user": _user()}))
    return len(live)


def recipients_of(rows: list[dict[str, Any]], share: str) -> list[str]:
    now = _now()
    return sorted({r["recipient"] for r in rows if share in (r["shares"] or []) and r["revoked_at"] is None
                   and (r["expires_at"] is None or r["expires_at"] > now)})


def write_profile(path: str, profile: dict[str, Any]) -> None:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(profile, f, indent=2)
        f.write("\n")
