"""Recipient tokens (salted scrypt hashes) and signed file URLs of the share server, without Spark.
The truths are hashlib/hmac computed here from the documented construction."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

import pytest

from ptdm_spark.sharing import server, tokens

pytestmark = pytest.mark.unit


def test_token_is_stored_as_salted_scrypt_hash_only():
    t = tokens.new_token()
    token_id, secret = tokens.parse_token(t.token)
    assert token_id == t.token_id and t.token.startswith("ptdm1.")
    assert secret not in (t.hash, t.salt) and t.token not in (t.hash, t.salt)
    want = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(t.salt), n=16384, r=8, p=1, dklen=32)
    assert t.hash == want.hex()
    assert tokens.verify_token(t.token, t.salt, t.hash)


def test_same_secret_different_salt_different_hash():
    a, b = tokens.new_token(), tokens.new_token()
    assert a.salt != b.salt and a.hash != b.hash and a.token != b.token


@pytest.mark.parametrize("mutate", [
    lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # one character of the secret
    lambda s: s.replace("ptdm1.", "ptdm2."),
    lambda s: s + "x",
    lambda s: "",
    lambda s: "Bearer " + s,
])
def test_wrong_tokens_fail(mutate):
    t = tokens.new_token()
    assert not tokens.verify_token(mutate(t.token), t.salt, t.hash)


def test_token_of_another_row_fails():
    a, b = tokens.new_token(), tokens.new_token()
    assert not tokens.verify_token(a.token, b.salt, b.hash)


def _b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_signed_url_roundtrip_and_hmac():
    key = b"k" * 32
    grant = {"t": "abc", "s": "share", "p": "part-0.parquet", "z": 10}
    signed, exp_ms = tokens.sign(key, grant, 60, now=1000.0)
    assert exp_ms == 1_060_000
    payload, sig = signed.split(".")
    assert _b64d(sig) == hmac.new(key, payload.encode(), hashlib.sha256).digest()
    assert json.loads(_b64d(payload)) == dict(grant, exp=1060)
    assert tokens.unsign(key, signed, now=1059.0) == dict(grant, exp=1060)


def test_signed_url_expired_tampered_or_other_key_is_refused():
    key = b"k" * 32
    signed, _ = tokens.sign(key, {"p": "a.parquet"}, 60, now=1000.0)
    with pytest.raises(tokens.BadSignature, match="expired"):
        tokens.unsign(key, signed, now=1060.0)
    payload, sig = signed.split(".")
    other = base64.urlsafe_b64encode(json.dumps({"p": "b.parquet", "exp": 1060}).encode()).rstrip(b"=").decode()
    for bad in (f"{other}.{sig}", f"{payload}.{sig[:-2]}AA", payload, "", f"{payload}."):
        with pytest.raises(tokens.BadSignature):
            tokens.unsign(key, bad, now=1001.0)
    with pytest.raises(tokens.BadSignature, match="signature"):
        tokens.unsign(b"x" * 32, signed, now=1001.0)


def test_parse_expiry():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert tokens.parse_expiry("30d", now) == now + dt.timedelta(days=30)
    assert tokens.parse_expiry("90m", now) == now + dt.timedelta(minutes=90)
    assert tokens.parse_expiry("2w", now) == now + dt.timedelta(days=14)
    assert tokens.parse_expiry("never", now) is None
    assert tokens.parse_expiry("2026-03-01", now) == dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    for bad in ("0d", "soon", "2025-01-01", "-1d"):
        with pytest.raises(ValueError):
            tokens.parse_expiry(bad, now)
    assert tokens.iso_utc(dt.datetime(2026, 1, 2, 3, 4, 5, 678900, tzinfo=dt.timezone.utc)) == "2026-01-02T03:04:05.678Z"


def test_byte_ranges():
    assert server._parse_range(None, 100) is None
    assert server._parse_range("bytes=0-9", 100) == (0, 9)
    assert server._parse_range("bytes=90-", 100) == (90, 99)
    assert server._parse_range("bytes=-10", 100) == (90, 99)
    assert server._parse_range("bytes=50-500", 100) == (50, 99)
    assert server._parse_range("bytes=0-1,5-6", 100) is None
    with pytest.raises(server.ApiError):
        server._parse_range("bytes=100-", 100)
