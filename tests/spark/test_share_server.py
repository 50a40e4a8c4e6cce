"""The Delta Sharing server (``ptdm share serve``) as a real process on 127.0.0.1, read with the
stock ``delta_sharing`` client and plain HTTP.

One module fixture: twelve 40x40 PNGs in two labels made here, ``ptdm run``, ``release create v1``,
then curated changed behind the release's back (a row appended with deltalake, so the live table is
no longer the release), two shares (``pets``: curated; ``imgs``: images) and grants: alice (pets),
bob (imgs), carol (pets, revoked by a test), dave (pets, expired after 1 s); the server started as
a subprocess. The truths are the files the test made (image_id = SHA-256 of the file bytes, the
pixels), the Parquet files on disk, and the requests the test itself sent (each with its own
User-Agent), looked up in the access log read with pyarrow after the server stopped."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import ROOT
from tests.imagefiles import encode, photo

pytestmark = pytest.mark.spark

DS = "sharesrv"
LABELS = ("ant", "bee")
PREFIX = "/delta-sharing"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(lakehouse: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ptdm_spark.cli", "share", "serve", "--port", str(port),
           "--set", f"lakehouse.root={lakehouse}", "--set", "share.refresh_seconds=0",
           "--set", "share.log_flush_seconds=1", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"share serve exited {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError(f"share serve did not listen in 90 s: {log.read_text()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Sent:
    """The requests this module sends itself: each gets a User-Agent of its own, to be found in the log."""

    def __init__(self):
        self.made: list[tuple[str, int]] = []  # (user agent, status)
        self._n = 0
        self._lock = threading.Lock()

    def __call__(self, method: str, url: str, token: str | None = None, **kw) -> requests.Response:
        with self._lock:
            ua = f"ptdm-test/{self._n}"
            self._n += 1
        headers = {"User-Agent": ua, **kw.pop("headers", {})}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        r = requests.request(method, url, headers=headers, timeout=60, **kw)
        with self._lock:
            self.made.append((ua, r.status_code))
        return r


@pytest.fixture(scope="module")
def s(tmp_path_factory, spark, cfg):
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from ptdm_spark.cli import main
    from tests.conftest import overrides_for

    lakehouse = Path(cfg.lakehouse.root)
    base = [a for o in overrides_for(lakehouse) for a in ("--set", o)]

    def ptdm(*args: str) -> int:
        return main([args[0], *base, *args[1:]])

    tmp = tmp_path_factory.mktemp("sharesrv")
    made = {}
    for i in range(12):
        arr = photo(300 + i, 40, 40)
        data = encode(arr)
        p = tmp / "src" / LABELS[i % 2] / f"{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        made[hashlib.sha256(data).hexdigest()] = (LABELS[i % 2], arr)
    assert ptdm("run", str(tmp / "src"), "--dataset", DS) == 0
    assert ptdm("release", "create", "v1", "--dataset", DS) == 0
    curated = str(lakehouse / DS / "curated")
    release_version = DeltaTable(curated).version()
    # The live table moves on after the release: a share must still serve the release's version.
    extra = DeltaTable(curated).to_pyarrow_table().slice(0, 1)
    extra = extra.set_column(extra.schema.get_field_index("image_id"), "image_id", pa.array(["f" * 64]))
    write_deltalake(curated, extra, mode="append")
    assert DeltaTable(curated).version() == release_version + 1

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}{PREFIX}"
    assert ptdm("share", "create", "pets", "--dataset", DS, "--release", "v1") == 0
    assert ptdm("share", "create", "imgs", "--dataset", DS, "--release", "v1", "--tables", "images") == 0
    profiles = {}
    for who, share, extra_args in (("alice", "pets", ()), ("bob", "imgs", ()), ("carol", "pets", ()),
                                   ("dave", "pets", ("--expires", "1s"))):
        profiles[who] = tmp / f"{who}.share"
        assert ptdm("share", "grant", share, "--recipient", who, "--out", str(profiles[who]),
                    "--endpoint", endpoint, *extra_args) == 0
    proc = _start(lakehouse, port, tmp / "serve.log")
    state = {"made": made, "tmp": tmp, "lakehouse": lakehouse, "port": port, "endpoint": endpoint,
             "profiles": profiles, "proc": proc, "procs": [proc], "sent": Sent(), "ptdm": ptdm,
             "release_version": release_version}
    yield state
    for p in state["procs"]:
        _stop(p)


def _token(s, who: str) -> str:
    return json.loads(s["profiles"][who].read_text())["bearerToken"]


def _query(s, who: str, body: dict | None = None, endpoint: str | None = None, **kw):
    r = s["sent"]("POST", f"{endpoint or s['endpoint']}/shares/pets/schemas/{DS}/tables/curated/query",
                  _token(s, who), json=body or {}, **kw)
    return r, [json.loads(line) for line in r.text.splitlines() if line.strip()]


def test_profile_and_recipients_table(s):
    prof = json.loads(s["profiles"]["alice"].read_text())
    assert prof["shareCredentialsVersion"] == 1 and prof["endpoint"] == s["endpoint"]
    exp = dt.datetime.fromisoformat(prof["expirationTime"].replace("Z", "+00:00"))
    assert dt.timedelta(days=29) < exp - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=30)
    import pyarrow.dataset as pads

    rows = pads.dataset(str(s["lakehouse"] / "_sharing" / "share_recipients"), format="parquet").to_table().to_pylist()
    tokens = {_token(s, w) for w in s["profiles"]}
    assert {r["recipient"] for r in rows} == {"alice", "bob", "carol", "dave"}
    blob = json.dumps(rows, default=str)
    assert not any(t in blob or t.split(".")[2] in blob for t in tokens)  # only salted hashes are stored
    assert oct(os.stat(s["profiles"]["alice"]).st_mode & 0o777) == "0o600"


def test_list_all_tables_is_exactly_the_grant(s):
    import delta_sharing

    got = {(t.share, t.schema, t.name) for t in delta_sharing.SharingClient(str(s["profiles"]["alice"])).list_all_tables()}
    assert got == {("pets", DS, "curated")}
    got = {(t.share, t.schema, t.name) for t in delta_sharing.SharingClient(str(s["profiles"]["bob"])).list_all_tables()}
    assert got == {("imgs", DS, "images")}


def test_load_as_pandas_returns_the_release(s):
    import io

    import delta_sharing
    from PIL import Image

    df = delta_sharing.load_as_pandas(f"{s['profiles']['alice']}#pets.{DS}.curated")
    assert len(df) == len(s["made"]) == 12
    assert {r.image_id: r.label for r in df.itertuples()} == {k: lb for k, (lb, _) in s["made"].items()}
    for r in df.itertuples():
        pixels = np.asarray(Image.open(io.BytesIO(r.image)).convert("RGB"))
        assert np.array_equal(pixels, s["made"][r.image_id][1])
    assert len(delta_sharing.load_as_pandas(f"{s['profiles']['alice']}#pets.{DS}.curated", limit=3)) == 3


def test_protocol_answers(s):
    ep, tok, sent = s["endpoint"], _token(s, "alice"), s["sent"]
    v = str(s["release_version"])
    r = sent("GET", f"{ep}/shares/pets/schemas/{DS}/tables/curated/version", tok)
    assert r.status_code == 200 and r.headers["Delta-Table-Version"] == v
    r = sent("HEAD", f"{ep}/shares/pets/schemas/{DS}/tables/curated", tok)
    assert r.status_code == 200 and r.headers["Delta-Table-Version"] == v
    r = sent("GET", f"{ep}/shares/pets/schemas/{DS}/tables/curated/metadata", tok)
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert r.headers["content-type"].startswith("application/x-ndjson") and list(lines[0]) == ["protocol"]
    fields = [f["name"] for f in json.loads(lines[1]["metaData"]["schemaString"])["fields"]]
    assert {"image_id", "label", "split", "image"} <= set(fields)
    assert sent("GET", f"{ep}/shares", tok).json()["items"][0]["name"] == "pets"
    assert sent("GET", f"{ep}/shares/pets/schemas", tok).json()["items"] == [{"name": DS, "share": "pets"}]
    r, lines = _query(s, "alice", {"predicateHints": ["label = 'ant'"], "limitHint": 1000})
    assert r.status_code == 200 and [list(x)[0] for x in lines[:2]] == ["protocol", "metaData"]
    from deltalake import DeltaTable

    on_disk = DeltaTable(str(s["lakehouse"] / DS / "curated"), version=s["release_version"]).file_uris()
    assert sorted(x["file"]["size"] for x in lines[2:]) == sorted(os.path.getsize(p) for p in on_disk)
    assert all(str(s["lakehouse"]) not in x["file"]["url"] for x in lines[2:])  # never a filesystem path
    r, _ = _query(s, "alice", {"version": s["release_version"] + 1})  # the live version is not shared
    assert r.status_code == 400


def test_file_url_bytes_ranges_tampered(s):
    r, lines = _query(s, "alice")
    sent = s["sent"]
    f = lines[2]["file"]
    got = sent("GET", f["url"])
    from deltalake import DeltaTable

    on_disk = {os.path.getsize(p): Path(p).read_bytes()
               for p in DeltaTable(str(s["lakehouse"] / DS / "curated"), version=s["release_version"]).file_uris()}
    assert got.status_code == 200 and got.content == on_disk[f["size"]]
    part = sent("GET", f["url"], headers={"Range": "bytes=4-99"})
    assert part.status_code == 206 and part.content == on_disk[f["size"]][4:100]
    assert sent("HEAD", f["url"]).headers["Content-Length"] == str(f["size"])
    head, _, tail = f["url"].rpartition("/files/")
    payload, sig = tail.split(".")
    flipped = payload[:10] + ("A" if payload[10] != "A" else "B") + payload[11:]
    for bad in (f"{head}/files/{flipped}.{sig}", f"{head}/files/{payload}.{sig[:-3]}xyz", f"{head}/files/{payload}",
                f"{head}/files/nothing"):
        assert sent("GET", bad).status_code == 403


def test_second_recipient_cannot_list_or_read(s):
    import delta_sharing

    ep, tok, sent = s["endpoint"], _token(s, "bob"), s["sent"]
    assert [x["name"] for x in sent("GET", f"{ep}/shares", tok).json()["items"]] == ["imgs"]
    for method, path in (("GET", "/shares/pets"), ("GET", "/shares/pets/all-tables"),
                         ("GET", f"/shares/pets/schemas/{DS}/tables"),
                         ("GET", f"/shares/pets/schemas/{DS}/tables/curated/metadata"),
                         ("POST", f"/shares/pets/schemas/{DS}/tables/curated/query"),
                         ("GET", f"/shares/imgs/schemas/{DS}/tables/curated/version")):  # a table imgs does not expose
        assert sent(method, ep + path, tok, **({"json": {}} if method == "POST" else {})).status_code in (403, 404)
    with pytest.raises(requests.HTTPError) as e:
        delta_sharing.load_as_pandas(f"{s['profiles']['bob']}#pets.{DS}.curated")
    assert e.value.response.status_code in (403, 404)


def test_wrong_revoked_expired_tokens_get_401(s):
    import delta_sharing

    ep, sent = s["endpoint"], s["sent"]
    alice = _token(s, "alice")
    for bad in (alice[:-1] + ("A" if alice[-1] != "A" else "B"), "ptdm1.000000000000." + "A" * 43, "nonsense", ""):
        assert sent("GET", f"{ep}/shares", bad if bad else None).status_code == 401
    assert sent("GET", f"{ep}/shares", _token(s, "dave")).status_code == 401  # expired (1 s)
    # carol works, hands out a file URL, is revoked: her token gets 401 and her URL 403.
    _, lines = _query(s, "carol")
    url = lines[2]["file"]["url"]
    assert sent("GET", url).status_code == 200
    assert s["ptdm"]("share", "revoke", "--recipient", "carol") == 0
    assert sent("GET", f"{ep}/shares", _token(s, "carol")).status_code == 401
    assert sent("GET", url).status_code == 403
    with pytest.raises(requests.HTTPError) as e:
        delta_sharing.SharingClient(str(s["profiles"]["carol"])).list_all_tables()
    assert e.value.response.status_code == 401
    assert sent("GET", f"{ep}/shares", alice).status_code == 200  # alice is untouched


def test_cli_misuse_is_exit_2(s):
    assert s["ptdm"]("share", "grant", "pets", "--recipient", "x") == 2  # no --out
    assert s["ptdm"]("share", "create", "pets", "--dataset", DS, "--release", "v1") == 2  # exists
    assert s["ptdm"]("share", "create", "p2", "--dataset", DS, "--release", "nope") == 2


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_p, key_p = tmp / "cert.pem", tmp / "key.pem"
    cert_p.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_p.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    return cert_p, key_p


def test_tls_and_expired_file_url(s):
    tmp = s["tmp"]
    cert, key = _self_signed(tmp)
    port = _free_port()
    endpoint = f"https://127.0.0.1:{port}{PREFIX}"
    profile = tmp / "erin.share"
    assert s["ptdm"]("share", "grant", "pets", "--recipient", "erin", "--out", str(profile), "--endpoint", endpoint) == 0
    proc = _start(s["lakehouse"], port, tmp / "serve-tls.log", "--tls-cert", str(cert), "--tls-key", str(key),
                  "--set", "share.url_ttl_seconds=10")
    s["procs"].append(proc)
    # The stock client in a fresh process that trusts the certificate: requests reads REQUESTS_CA_BUNDLE,
    # the aiohttp file reader SSL_CERT_FILE (aiohttp builds its SSL context at import, so not in this process).
    code = ("import json, sys, delta_sharing\n"
            "p = sys.argv[1]\n"
            "tables = [[t.share, t.name] for t in delta_sharing.SharingClient(p).list_all_tables()]\n"
            f"df = delta_sharing.load_as_pandas(p + '#pets.{DS}.curated')\n"
            "print(json.dumps({'tables': tables, 'ids': sorted(df['image_id'])}))\n")
    out = subprocess.run([sys.executable, "-c", code, str(profile)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "REQUESTS_CA_BUNDLE": str(cert), "SSL_CERT_FILE": str(cert)})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"tables": [["pets", "curated"]], "ids": sorted(s["made"])}
    import certifi

    with pytest.raises(requests.exceptions.SSLError):  # really TLS: without our certificate, no trust
        requests.get(f"{endpoint}/shares", verify=certifi.where(), timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the TLS port
        requests.get(f"http://127.0.0.1:{port}{PREFIX}/shares", timeout=10)
    r, lines = _query(s, "alice", endpoint=endpoint, verify=str(cert), headers={})
    # (alice's token is valid on every server of the lakehouse)
    assert r.status_code == 200
    url = lines[2]["file"]["url"]
    assert url.startswith(endpoint)
    assert s["sent"]("GET", url, verify=str(cert)).status_code == 200
    time.sleep(max(0.0, lines[2]["file"]["expirationTimestamp"] / 1000 - time.time()) + 1.5)
    assert s["sent"]("GET", url, verify=str(cert)).status_code == 403  # expired after share.url_ttl_seconds


def test_burst_of_concurrent_clients(s):
    """8 clients x 5 reads at once (query + every file): every answer complete and correct."""
    from deltalake import DeltaTable

    truth = sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest()
                   for p in DeltaTable(str(s["lakehouse"] / DS / "curated"), version=s["release_version"]).file_uris())
    results, errors = [], []

    def client():
        for _ in range(5):
            try:
                r, lines = _query(s, "alice")
                assert r.status_code == 200
                got = []
                for x in lines[2:]:
                    g = s["sent"]("GET", x["file"]["url"])
                    assert g.status_code == 200 and len(g.content) == x["file"]["size"]
                    got.append(hashlib.sha256(g.content).hexdigest())
                results.append(sorted(got))
            except Exception as exc:  # collected: asserted below
                errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 40 and all(r == truth for r in results)


def test_access_log_holds_every_request(s):
    import pyarrow.dataset as pads

    for p in s["procs"]:
        _stop(p)
        assert p.returncode in (0, -signal.SIGTERM), p.returncode
    from deltalake import DeltaTable

    files = DeltaTable(str(s["lakehouse"] / "_sharing" / "access_log")).file_uris()
    rows = pads.dataset(files, format="parquet").to_table().to_pylist()
    by_ua = {}
    for r in rows:
        by_ua.setdefault(r["user_agent"], []).append(r)
    for ua, status in s["sent"].made:
        assert [x["status"] for x in by_ua.get(ua, [])] == [status], ua
    mine = [r for r in rows if (r["user_agent"] or "").startswith("ptdm-test/")]
    assert len(mine) == len(s["sent"].made)
    # what the stock client did is logged too: alice's query and file reads, with sizes
    client = [r for r in rows if r["recipient"] == "alice" and not (r["user_agent"] or "").startswith("ptdm-test/")]
    assert any(r["method"] == "POST" and r["files"] >= 1 and r["status"] == 200 for r in client)
    from deltalake import DeltaTable as DT

    sizes = {os.path.getsize(p) for p in DT(str(s["lakehouse"] / DS / "curated"), version=s["release_version"]).file_uris()}
    full = [r for r in rows if r["method"] == "GET" and r["status"] == 200 and r["files"] == 1]
    assert full and all(r["bytes"] in sizes for r in full)
    assert all(r["client"] == "127.0.0.1" for r in rows)
    assert {r["status"] for r in rows} >= {200, 206, 400, 401, 403, 404}
