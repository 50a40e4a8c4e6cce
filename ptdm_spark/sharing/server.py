"""``ptdm share serve``: the Delta Sharing REST protocol over the lakehouse, without Spark.

The API (prefix ``/delta-sharing``, the profile's endpoint) follows delta-io/delta-sharing's
PROTOCOL.md: list shares, get a share, list schemas (a share has one schema, its dataset), list
tables and all tables, the table version (GET ``.../version`` and the older HEAD on the table),
the metadata and the query (NDJSON: a ``protocol`` line, a ``metaData`` line, one ``file`` line per
Parquet file; ``responseformat=parquet``). A share serves its release's Delta version of each table,
read from the Delta log with the ``deltalake`` package; ``predicateHints``/``jsonPredicateHints``
are accepted (the hints are best effort by the protocol and the shared tables have no partitions,
so every file is returned), ``limitHint`` stops the file list once the files' ``numRecords`` reach
it. A query asking for another version, or for changes (``startingVersion``), gets 400.

Files are handed out as URLs of this server, ``/delta-sharing/files/<payload>.<signature>`` (see
tokens.py: HMAC-SHA256 with the server's secret, valid ``share.url_ttl_seconds``); the server
streams them from the lakehouse through pyarrow's filesystem (HEAD and single byte ranges, which
the clients' HTTP readers use). A tampered or expired URL, or one whose token was revoked since,
gets 403. A request without a valid bearer token gets 401; a share the token does not hold is not
listed, and asking for it (or a table it does not expose) gets 404, as for a share that does not exist.

Every request is appended to ``<root>/_sharing/access_log`` (time, recipient, token_id, dataset,
share, schema, table, version, method, path, status, files, bytes, client, user_agent, elapsed_ms):
rows are buffered and written with deltalake at least every ``share.log_flush_seconds`` and at
shutdown. ``files``/``bytes``: for a query the files listed and their total size, for a file
download 1 and the bytes sent, else 0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.sharing import shares as sh
from ptdm_spark.sharing import tokens

PREFIX = "/delta-sharing"
CHUNK = 256 * 1024
NDJSON = "application/x-ndjson; charset=utf-8"
CAPABILITIES = "delta-sharing-capabilities"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- who may see what ------------------------------------------------------------------------------


@dataclass
class Principal:
    recipient: str
    token_id: str
    shares: frozenset[str]


@dataclass
class Catalog:
    """Shares and recipient tokens, re-read when their tables change (checked at most every
    ``refresh`` seconds), and the verified tokens (scrypt is slow on purpose: a verified token is
    remembered by its SHA-256 for this process; revocation and expiry are checked on every request)."""

    root: str
    refresh: float
    shares: dict[str, sh.Share] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    _versions: tuple[int | None, int | None] = (None, None)
    _checked: float = -1e18
    _verified: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _version(self, table: str) -> int | None:
        from deltalake import DeltaTable

        uri = sh.table_uri(self.root, table)
        return DeltaTable(uri).version() if DeltaTable.is_deltatable(uri) else None

    def check(self) -> None:
        with self._lock:
            now = time.monotonic()
            if now - self._checked < self.refresh:
                return
            versions = (self._version("shares"), self._version("share_recipients"))
            if versions != self._versions:
                self.shares = {s.name.lower(): s for s in sh.all_shares(self.root)}
                self.tokens = {r["token_id"]: r for r in sh.read(self.root, "share_recipients")}
                self._versions = versions
            self._checked = now

    def live(self, row: dict[str, Any] | None, now: dt.datetime) -> bool:
        return (row is not None and row["revoked_at"] is None
                and (row["expires_at"] is None or row["expires_at"] > now))

    def principal(self, authorization: str | None) -> Principal:
        self.check()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "UNAUTHENTICATED", "missing bearer token")
        token = token.strip()
        parsed = tokens.parse_token(token)
        row = self.tokens.get(parsed[0]) if parsed else None
        if row is None:
            raise ApiError(401, "UNAUTHENTICATED", "unknown token")
        key = hashlib.sha256(token.encode()).hexdigest()
        if self._verified.get(key) != row["token_id"]:
            if not tokens.verify_token(token, row["salt"], row["hash"], row["kdf"]):
                raise ApiError(401, "UNAUTHENTICATED", "unknown token")
            self._verified[key] = row["token_id"]
        now = dt.datetime.now(dt.timezone.utc)
        if row["revoked_at"] is not None:
            raise ApiError(401, "UNAUTHENTICATED", "token revoked")
        if not self.live(row, now):
            raise ApiError(401, "UNAUTHENTICATED", "token expired")
        held = {s.lower() for r in self.tokens.values() if r["recipient"] == row["recipient"] and self.live(r, now)
                for s in (r["shares"] or [])}
        return Principal(row["recipient"], row["token_id"], frozenset(s for s in held if s in self.shares))

    def token_holds(self, token_id: str, share: str) -> bool:
        """For file URLs: the token that asked is still live and its recipient still holds ``share``."""
        self.check()
        now = dt.datetime.now(dt.timezone.utc)
        row = self.tokens.get(token_id)
        if not self.live(row, now) or share.lower() not in self.shares:
            return False
        return any(share.lower() in {s.lower() for s in (r["shares"] or [])} for r in self.tokens.values()
                   if r["recipient"] == row["recipient"] and self.live(r, now))


# --- the tables, at a version ----------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    uri: str
    version: int
    metadata: dict[str, Any]
    files: list[dict[str, Any]]  # path (in the table), location (absolute), size, stats, id, partitionValues


_snapshots: OrderedDict[tuple[str, int], Snapshot] = OrderedDict()
_snap_lock = threading.Lock()


def _json_value(v: Any) -> Any:
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, bytes):
        return None
    return v


def snapshot(uri: str, version: int) -> Snapshot:
    """The Delta table at ``uri`` as of ``version``: metadata and add files (cached: a version never changes)."""
    key = (uri, version)
    with _snap_lock:
        if key in _snapshots:
            _snapshots.move_to_end(key)
            return _snapshots[key]
    import pyarrow as pa
    from deltalake import DeltaTable

    t = DeltaTable(uri, version=version)
    md = t.metadata()
    actions = pa.table(t.get_add_actions(flatten=False)).to_pylist()
    files = []
    for a in actions:
        path = a["path"]
        location = path if "://" in path or path.startswith("/") else f"{uri.rstrip('/')}/{urllib.parse.unquote(path)}"
        stats: dict[str, Any] = {}
        if a.get("num_records") is not None:
            stats["numRecords"] = int(a["num_records"])
        for src, dst in (("min", "minValues"), ("max", "maxValues"), ("null_count", "nullCount")):
            if isinstance(a.get(src), dict):
                vals = {k: _json_value(v) for k, v in a[src].items() if v is not None and _json_value(v) is not None}
                if vals:
                    stats[dst] = vals
        files.append({"path": path, "location": location, "size": int(a["size_bytes"]),
                      "partitionValues": {k: (None if v is None else str(v))
                                          for k, v in (a.get("partition_values") or {}).items()},
                      "stats": json.dumps(stats, separators=(",", ":")) if stats else None,
                      "id": hashlib.md5(path.encode()).hexdigest()})
    metadata = {"id": md.id, "format": {"provider": "parquet"}, "schemaString": t.schema().to_json(),
                "partitionColumns": list(md.partition_columns), "configuration": dict(md.configuration or {}),
                "size": sum(f["size"] for f in files), "numFiles": len(files)}
    snap = Snapshot(uri, version, metadata, files)
    with _snap_lock:
        _snapshots[key] = snap
        while len(_snapshots) > 64:
            _snapshots.popitem(last=False)
    return snap


_filesystems: dict[str, Any] = {}


def open_file(location: str):
    """A pyarrow random-access file for an absolute path or URI (local, file:, hdfs:// ...).

    Local files through pyarrow; any other scheme through deltalake's own object store (the one
    that reads the Delta log: HDFS without libhdfs or a JVM), one per scheme://host."""
    import pyarrow.fs as pafs

    if "://" not in location:
        return pafs.LocalFileSystem().open_input_file(location)
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme == "file":
        return pafs.LocalFileSystem().open_input_file(urllib.parse.unquote(parsed.path))
    key = f"{parsed.scheme}://{parsed.netloc}"
    if key not in _filesystems:
        from deltalake.fs import DeltaStorageHandler

        _filesystems[key] = pafs.PyFileSystem(DeltaStorageHandler(f"{key}/"))
    return _filesystems[key].open_input_file(parsed.path.lstrip("/"))


PLAIN_PREFIX = "ptdm-share-plain-"


def remove_stale_plain_dirs(tmp: str | None = None) -> list[Path]:
    """Remove the decrypted-copy folders of share servers that no longer run (killed before their
    shutdown could remove them; the folder's name carries the server's pid). Returns them."""
    from ptdm_spark.session import pid_alive

    gone = []
    for d in Path(tmp or tempfile.gettempdir()).glob(PLAIN_PREFIX + "*"):
        pid = d.name[len(PLAIN_PREFIX):].split("-", 1)[0]
        if d.is_dir() and pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d)
    return gone


def _encrypted(location: str) -> bool:
    """Whether the Parquet file at ``location`` is encrypted at rest (its tail reads ``PARE``)."""
    from ptdm_spark.protect import encryption

    f = open_file(location)
    try:
        return encryption.is_encrypted(f)
    finally:
        f.close()


class PlainFiles:
    """What the server hands out for a data file: the file itself, or, for a lakehouse encrypted
    at rest (``security.encryption``), its rows decrypted once with the server's key file into a
    private folder (mode 700, removed at shutdown) and served as plain Parquet. Recipients get
    plain Parquet over the server's TLS; keys never leave the server. A Delta version's files
    never change, so one copy per file serves every query and range request."""

    def __init__(self, keys: dict[str, bytes] | None):
        self.keys = keys
        self.dir: Path | None = None
        self._done: dict[str, tuple[str, int]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, location: str, size: int) -> tuple[str, int]:
        """(what to open, its size) for the data file at ``location`` of ``size`` bytes.

        Raises:
            ApiError: the file is encrypted at rest and the server has no key (recipients would
                get ciphertext they cannot open).
        """
        if self.keys is None:
            if location not in self._done:
                if _encrypted(location):
                    raise ApiError(500, "INTERNAL_ERROR", "this table is encrypted at rest and the server has no key "
                                                          "for it (start ptdm share serve with the dataset's "
                                                          "security.encryption settings)")
                self._done[location] = (location, size)
            return self._done[location]
        with self._lock:
            if location in self._done:
                return self._done[location]
            if self.dir is None:
                remove_stale_plain_dirs()
                self.dir = Path(tempfile.mkdtemp(prefix=PLAIN_PREFIX + f"{os.getpid()}-"))
            lock = self._locks.setdefault(location, threading.Lock())
        with lock:
            if location not in self._done:
                from ptdm_spark.protect import encryption

                if not _encrypted(location):  # written before encryption was on
                    result = (location, size)
                else:
                    f = open_file(location)
                    try:
                        dest = self.dir / (hashlib.sha256(location.encode()).hexdigest()[:32] + ".parquet")
                        result = (str(dest), encryption.plain_copy(f, dest, self.keys))
                    finally:
                        f.close()
                with self._lock:
                    self._done[location] = result
        return self._done[location]

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- the access log --------------------------------------------------------------------------------


class AccessLog:
    """Rows buffered in memory and appended to ``_sharing/access_log`` by one thread."""

    def __init__(self, root: str, every: float):
        self.root, self.every = root, every
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def add(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows.append(row)

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            sh.append(self.root, "access_log", rows, "share serve")
            self.written += len(rows)
        except Exception as exc:  # keep them for the next try; say so once per failure
            print(f"share serve: access_log write failed ({exc}); retrying", file=sys.stderr, flush=True)
            with self._lock:
                self._rows[:0] = rows

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.flush()


class LogMiddleware:
    """Pure ASGI: sees the status and every body byte sent (also of streamed files), then logs the request."""

    def __init__(self, app, log: AccessLog):
        self.app, self.log = app, log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        seen = {"status": 500, "sent": 0}
        t0 = time.perf_counter()

        async def counting(message):
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["sent"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            client = scope.get("client")
            headers = dict(scope.get("headers") or [])
            is_file = state.get("kind") == "file"
            sent = seen["sent"] if is_file and scope["method"] == "GET" and seen["status"] in (200, 206) else 0
            self.log.add({
                "time": dt.datetime.now(dt.timezone.utc), "recipient": state.get("recipient"),
                "token_id": state.get("token_id"), "dataset": state.get("dataset"), "share": state.get("share"),
                "schema": state.get("schema"), "table": state.get("table"), "version": state.get("version"),
                "method": scope["method"], "path": scope.get("path"), "status": seen["status"],
                "files": (1 if sent else 0) if is_file else int(state.get("files") or 0),
                "bytes": sent if is_file else int(state.get("bytes") or 0),
                "client": client[0] if client else None,
                "user_agent": headers.get(b"user-agent", b"").decode("latin-1") or None,
                "elapsed_ms": (time.perf_counter() - t0) * 1000.0})


# --- the app ---------------------------------------------------------------------------------------


def _page(items: list[dict[str, Any]], max_results: int | None, page_token: str | None) -> dict[str, Any]:
    try:
        start = int(page_token) if page_token else 0
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "bad pageToken") from None
    if max_results is not None and max_results < 0:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", "maxResults must be non-negative")
    end = len(items) if max_results is None else start + max_results
    out: dict[str, Any] = {"items": items[start:end]}
    if end < len(items):
        out["nextPageToken"] = str(end)
    return out


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range; None for no/unsupported range; ApiError 416 when unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    a, _, b = header[6:].strip().partition("-")
    try:
        if a == "":
            n = int(b)
            if n <= 0:
                raise ValueError
            start, end = max(0, size - n), size - 1
        else:
            start = int(a)
            end = min(int(b), size - 1) if b else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        raise ApiError(416, "RANGE_NOT_SATISFIABLE", f"range {header} of {size} bytes")
    return start, end


def create_app(cfg: Config, secret: bytes):
    from contextlib import asynccontextmanager

    from ptdm_spark.protect import encryption

    root = cfg.lakehouse.root
    catalog = Catalog(root, cfg.share.refresh_seconds)
    log = AccessLog(root, cfg.share.log_flush_seconds)
    ttl = cfg.share.url_ttl_seconds
    plain = PlainFiles(encryption.check(cfg.security.encryption))

    @asynccontextmanager
    async def lifespan(app):
        catalog.check()
        log.start()
        yield
        log.close()
        plain.close()

    app = FastAPI(title="ptdm-spark Delta Sharing server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.catalog, app.state.log = catalog, log

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return JSONResponse({"errorCode": exc.code, "message": exc.message}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "RESOURCE_DOES_NOT_EXIST", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        return JSONResponse({"errorCode": code, "message": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception):
        print(f"share serve: {request.method} {request.url.path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return JSONResponse({"errorCode": "INTERNAL_ERROR", "message": type(exc).__name__}, status_code=500)

    def who(request: Request) -> Principal:
        p = catalog.principal(request.headers.get("authorization"))
        request.state.recipient, request.state.token_id = p.recipient, p.token_id
        return p

    def share_of(request: Request, p: Principal, share: str) -> sh.Share:
        request.state.share = share
        s = catalog.shares.get(share.lower())
        if s is None or share.lower() not in p.shares:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"share {share!r} not found")
        request.state.share, request.state.dataset = s.name, s.dataset
        return s

    def table_of(request: Request, p: Principal, share: str, schema: str, table: str) -> tuple[sh.Share, str, int]:
        s = share_of(request, p, share)
        request.state.schema, request.state.table = schema, table
        if schema.lower() != s.dataset.lower():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"schema {schema!r} not found in share {s.name!r}")
        names = {t.lower(): t for t in s.tables}
        if table.lower() not in names:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"table {schema}.{table} not found in share {s.name!r}")
        name = names[table.lower()]
        request.state.schema, request.state.table, request.state.version = s.dataset, name, s.tables[name]
        return s, name, s.tables[name]

    def table_item(s: sh.Share, t: str) -> dict[str, Any]:
        return {"name": t, "schema": s.dataset, "share": s.name, "shareId": s.id,
                "id": str(uuid.uuid5(uuid.UUID(s.id), t))}

    def version_headers(v: int) -> dict[str, str]:
        return {"Delta-Table-Version": str(v)}

    @app.get(PREFIX + "/shares")
    def list_shares(request: Request, maxResults: int | None = None, pageToken: str | None = None):
        p = who(request)
        items = [{"name": s.name, "id": s.id} for k, s in sorted(catalog.shares.items()) if k in p.shares]
        return _page(items, maxResults, pageToken)

    @app.get(PREFIX + "/shares/{share}")
    def get_share(request: Request, share: str):
        s = share_of(request, who(request), share)
        return {"share": {"name": s.name, "id": s.id}}

    @app.get(PREFIX + "/shares/{share}/schemas")
    def list_schemas(request: Request, share: str, maxResults: int | None = None, pageToken: str | None = None):
        s = share_of(request, who(request), share)
        return _page([{"name": s.dataset, "share": s.name}], maxResults, pageToken)

    @app.get(PREFIX + "/shares/{share}/schemas/{schema}/tables")
    def list_tables(request: Request, share: str, schema: str, maxResults: int | None = None, pageToken: str | None = None):
        s = share_of(request, who(request), share)
        request.state.schema = schema
        if schema.lower() != s.dataset.lower():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"schema {schema!r} not found in share {s.name!r}")
        return _page([table_item(s, t) for t in sorted(s.tables)], maxResults, pageToken)

    @app.get(PREFIX + "/shares/{share}/all-tables")
    def all_tables(request: Request, share: str, maxResults: int | None = None, pageToken: str | None = None):
        s = share_of(request, who(request), share)
        return _page([table_item(s, t) for t in sorted(s.tables)], maxResults, pageToken)

    @app.head(PREFIX + "/shares/{share}/schemas/{schema}/tables/{table}")
    def table_version_head(request: Request, share: str, schema: str, table: str):
        _, _, v = table_of(request, who(request), share, schema, table)
        return Response(status_code=200, headers=version_headers(v))

    @app.get(PREFIX + "/shares/{share}/schemas/{schema}/tables/{table}/version")
    def table_version(request: Request, share: str, schema: str, table: str, startingTimestamp: str | None = None):
        _, _, v = table_of(request, who(request), share, schema, table)
        return Response(status_code=200, headers=version_headers(v))

    def ndjson(lines: list[dict[str, Any]], v: int) -> Response:
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        return Response(body, media_type=NDJSON,
                        headers={**version_headers(v), CAPABILITIES: "responseformat=parquet"})

    def check_format(request: Request) -> None:
        caps = request.headers.get(CAPABILITIES, "").lower()
        for part in caps.split(";"):
            k, _, vals = part.partition("=")
            if k.strip() == "responseformat" and "parquet" not in {x.strip() for x in vals.split(",")}:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "this server answers responseformat=parquet only")

    @app.get(PREFIX + "/shares/{share}/schemas/{schema}/tables/{table}/metadata")
    def metadata(request: Request, share: str, schema: str, table: str, version: int | None = None):
        s, name, v = table_of(request, who(request), share, schema, table)
        check_format(request)
        if version is not None and version != v:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"share {s.name} serves {s.dataset}.{name} at version {v} only")
        snap = snapshot(sh.dataset_table_uri(root, s.dataset, name), v)
        return ndjson([{"protocol": {"minReaderVersion": 1}}, {"metaData": snap.metadata}], v)

    @app.post(PREFIX + "/shares/{share}/schemas/{schema}/tables/{table}/query")
    async def query(request: Request, share: str, schema: str, table: str):
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ApiError(400, "MALFORMED_REQUEST", "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_query, request, share, schema, table, body)

    def _query(request: Request, share: str, schema: str, table: str, body: dict[str, Any]) -> Response:
        p = who(request)
        s, name, v = table_of(request, p, share, schema, table)
        check_format(request)
        if body.get("startingVersion") is not None or body.get("endingVersion") is not None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "changes (startingVersion) are not shared: a share is one release")
        if body.get("timestamp") is not None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"query by timestamp is not shared; version {v} is")
        asked = body.get("version")
        if asked is not None and asked != v:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"share {s.name} serves {s.dataset}.{name} at version {v} only")
        limit = body.get("limitHint")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "limitHint must be a non-negative integer")
        hints = body.get("predicateHints")
        if hints is not None and not (isinstance(hints, list) and all(isinstance(h, str) for h in hints)):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "predicateHints must be a list of strings")
        snap = snapshot(sh.dataset_table_uri(root, s.dataset, name), v)
        chosen, rows = [], 0
        for f in snap.files:
            if limit is not None and rows >= limit and chosen:
                break
            chosen.append(f)
            rows += json.loads(f["stats"]).get("numRecords", 0) if f["stats"] else 0
            if limit is not None and not f["stats"]:
                limit = None  # unknown row counts: every file
        base = (cfg.share.endpoint or str(request.base_url).rstrip("/") + PREFIX).rstrip("/")
        lines: list[dict[str, Any]] = [{"protocol": {"minReaderVersion": 1}}, {"metaData": snap.metadata}]
        sizes = [plain.get(f["location"], f["size"])[1] for f in chosen]  # plain Parquet, when encrypted
        for f, size in zip(chosen, sizes):
            signed, exp_ms = tokens.sign(secret, {"t": p.token_id, "s": s.name, "d": s.dataset, "n": name, "v": v,
                                                  "p": f["path"], "z": size}, ttl)
            line = {"url": f"{base}/files/{signed}", "id": f["id"], "partitionValues": f["partitionValues"],
                    "size": size, "expirationTimestamp": exp_ms}
            if f["stats"]:
                line["stats"] = f["stats"]
            if asked is not None:
                line["version"] = v
            lines.append({"file": line})
        request.state.files, request.state.bytes = len(chosen), sum(sizes)
        return ndjson(lines, v)

    def file_grant(request: Request, signed: str) -> tuple[dict[str, Any], str]:
        request.state.kind = "file"
        try:
            g = tokens.unsign(secret, signed)
        except tokens.BadSignature as exc:
            raise ApiError(403, "FORBIDDEN", f"file URL {exc}") from None
        row = catalog.tokens.get(g["t"]) or {}
        st = request.state
        st.token_id, st.recipient = g["t"], row.get("recipient")
        st.share, st.dataset, st.schema, st.table, st.version = g["s"], g["d"], g["d"], g["n"], g["v"]
        if not catalog.token_holds(g["t"], g["s"]):
            raise ApiError(403, "FORBIDDEN", "the token of this URL no longer holds its share")
        snap = snapshot(sh.dataset_table_uri(root, g["d"], g["n"]), int(g["v"]))
        loc = next((f["location"] for f in snap.files if f["path"] == g["p"]), None)
        if loc is None:
            raise ApiError(403, "FORBIDDEN", "file URL names no file of the table")
        return g, loc

    @app.head(PREFIX + "/files/{signed}")
    def file_head(request: Request, signed: str):
        g, _ = file_grant(request, signed)
        return Response(status_code=200, headers={"Content-Length": str(g["z"]), "Accept-Ranges": "bytes",
                                                  "Content-Type": "application/octet-stream"})

    @app.get(PREFIX + "/files/{signed}")
    def file_get(request: Request, signed: str):
        g, loc = file_grant(request, signed)
        size = int(g["z"])
        rng = _parse_range(request.headers.get("range"), size)
        start, end = rng if rng else (0, size - 1)
        f = open_file(plain.get(loc, size)[0])

        def chunks():
            try:
                f.seek(start)
                left = end - start + 1
                while left > 0:
                    data = f.read(min(CHUNK, left))
                    if not data:
                        break
                    left -= len(data)
                    yield data
            finally:
                f.close()

        headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes"}
        if rng:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return StreamingResponse(chunks(), status_code=206 if rng else 200, headers=headers,
                                 media_type="application/octet-stream")

    return LogMiddleware(app, log), app


def server_secret(cfg: Config) -> bytes:
    if not cfg.share.secret_file:
        return os.urandom(32)
    try:
        data = open(os.path.expanduser(cfg.share.secret_file), "rb").read().strip()
    except OSError as exc:
        raise UsageError(f"share.secret_file: cannot read {cfg.share.secret_file} ({exc.strerror})") from None
    if len(data) < 32:
        raise UsageError(f"share.secret_file: {cfg.share.secret_file} holds {len(data)} bytes; use at least 32 random bytes")
    return data


def serve(cfg: Config, host: str, port: int, tls_cert: str | None, tls_key: str | None) -> int:
    import uvicorn

    for f in (tls_cert, tls_key):
        if f and not os.path.isfile(f):
            raise UsageError(f"no such file: {f}")
    asgi, app = create_app(cfg, server_secret(cfg))
    catalog: Catalog = app.state.catalog
    catalog.check()
    scheme = "https" if tls_cert else "http"
    print(f"share serve: {scheme}://{host}:{port}{PREFIX} ({len(catalog.shares)} share(s), "
          f"{sum(1 for r in catalog.tokens.values() if catalog.live(r, dt.datetime.now(dt.timezone.utc)))} live token(s)); "
          f"access log: {sh.table_uri(cfg.lakehouse.root, 'access_log')}", flush=True)
    config = uvicorn.Config(asgi, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                            log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=10)
    uvicorn.Server(config).run()  # SIGINT/SIGTERM: graceful shutdown, the access log flushed (lifespan)
    return 0
