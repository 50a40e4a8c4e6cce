"""``ptdm audit``: one timeline of a dataset: who ran which jobs (``runs``), what changed (the Delta
history of every table of the dataset), what was shared (shares and grants of the dataset's
releases) and who read what (``_sharing/access_log``). Read with deltalake: no Spark.

Each event: ``time`` (UTC), ``kind`` (run, commit, share, grant, revoke, access), ``who`` (user or
recipient), ``what`` (job, table@version, share, request) and ``detail``.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ptdm_spark.sharing import shares as sh

UTC = dt.timezone.utc


def _ts(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, UTC)


def _dataset_tables(root: str, dataset: str) -> dict[str, str]:
    """{table: uri} of the Delta tables under the dataset's folder."""
    import pyarrow.fs as pafs
    from deltalake import DeltaTable

    base = sh.dataset_table_uri(root, dataset, "").rstrip("/")
    fs, path = (pafs.FileSystem.from_uri(base) if "://" in base else (pafs.LocalFileSystem(), base))
    out = {}
    for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)):
        name = info.base_name
        if info.type == pafs.FileType.Directory and not name.startswith(("_", ".")):
            uri = f"{base}/{name}"
            if DeltaTable.is_deltatable(uri):
                out[name] = uri
    return out


def timeline(root: str, dataset: str, since: dt.datetime | None = None,
             keys: dict[str, bytes] | None = None) -> list[dict[str, Any]]:
    """``keys``: the master keys of ``security.encryption`` (None when off): the ``runs`` rows are
    read with them when the dataset is encrypted at rest (the commit history is the plaintext log)."""
    from deltalake import DeltaTable

    from ptdm_spark.protect.encryption import read_delta

    events: list[dict[str, Any]] = []
    tables = _dataset_tables(root, dataset)
    if "runs" in tables:
        for r in read_delta(tables["runs"], keys).select(
                ["run_id", "job", "started_at", "finished_at", "status", "user", "host", "args"]).to_pylist():
            took = (f", {(r['finished_at'] - r['started_at']).total_seconds():.0f} s"
                    if r["finished_at"] and r["started_at"] else "")
            events.append({"time": r["started_at"], "kind": "run", "who": r["user"], "what": r["job"],
                           "detail": f"{r['status']}{took} on {r['host']} (run {r['run_id']})"})
    for name, uri in sorted(tables.items()):
        for c in DeltaTable(uri).history():
            meta: dict[str, Any] = {}
            try:
                meta = json.loads(c.get("userMetadata") or "{}")
            except ValueError:
                pass
            metrics = c.get("operationMetrics") or {}
            rows = metrics.get("numOutputRows") or metrics.get("num_added_rows")
            events.append({"time": _ts(c.get("timestamp")), "kind": "commit", "who": c.get("user") or meta.get("job"),
                           "what": f"{name}@{c.get('version')}",
                           "detail": f"{c.get('operation')}" + (f" {rows} rows" if rows is not None else "")
                                     + (f" (run {meta['run_id']})" if meta.get("run_id") else
                                        f" ({c.get('engineInfo')})" if c.get("engineInfo") else "")})
    mine = {s["name"] for s in sh.read(root, "shares") if s["dataset"] == dataset}
    for s in sh.read(root, "shares"):
        if s["dataset"] == dataset:
            events.append({"time": s["created_at"], "kind": "share", "who": s["created_by"], "what": s["name"],
                           "detail": f"release {s['release']}: " + ", ".join(f"{t['name']}@{t['version']}" for t in s["tables"])})
    for r in sh.read(root, "share_recipients"):
        held = sorted(set(r["shares"] or []) & mine)
        if not held:
            continue
        exp = r["expires_at"].isoformat() if r["expires_at"] else "never"
        events.append({"time": r["created_at"], "kind": "grant", "who": r["created_by"], "what": ",".join(held),
                       "detail": f"to {r['recipient']} (token {r['token_id']}, expires {exp})"})
        if r["revoked_at"] is not None:
            events.append({"time": r["revoked_at"], "kind": "revoke", "who": None, "what": ",".join(held),
                           "detail": f"{r['recipient']} (token {r['token_id']})"})
    for a in sh.read(root, "access_log"):
        if a["dataset"] != dataset:
            continue
        what = f"{a['share']}" + (f".{a['schema']}.{a['table']}@{a['version']}" if a["table"] else "")
        detail = f"{a['method']} {a['path'][:60]} -> {a['status']}"
        if a["files"]:
            detail += f", {a['files']} file(s) {a['bytes']} bytes"
        events.append({"time": a["time"], "kind": "access", "who": a["recipient"], "what": what,
                       "detail": f"{detail} from {a['client']}"})
    events = [e for e in events if e["time"] is not None and (since is None or e["time"] >= since)]
    events.sort(key=lambda e: (e["time"], e["kind"]))
    return events
