"""Recipient tokens and signed file URLs of the Delta Sharing server (no Spark, no I/O).

A recipient token is ``ptdm1.<token_id>.<secret>``: the id (12 hex digits) names its row in the
``share_recipients`` table; the secret (32 random bytes, base64url) is never stored, only its salted
scrypt hash (16-byte salt, N=2**14, r=8, p=1), compared in constant time.

A file URL handed out by a query is ``<endpoint>/files/<payload>.<signature>``: the payload is the
base64url JSON of what the URL grants (token id, share, schema, table, version, the file's path in
the table, the expiry as Unix seconds), the signature HMAC-SHA256 of the payload with the server's
secret. Changing a byte of either, or using it after its expiry, makes it invalid.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

PREFIX = "ptdm1"
KDF = "scrypt:16384:8:1"
_TOKEN_RE = re.compile(r"^ptdm1\.([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- tokens ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    token: str      # what the recipient gets (the profile's bearerToken); shown once
    token_id: str
    salt: str       # hex
    hash: str       # hex
    kdf: str = KDF


def hash_secret(secret: str, salt: bytes, kdf: str = KDF) -> bytes:
    name, n, r, p = kdf.split(":")
    if name != "scrypt":
        raise ValueError(f"unknown key derivation {kdf!r}")
    return hashlib.scrypt(secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024, dklen=32)


def new_token() -> NewToken:
    token_id = secrets.token_hex(6)
    secret = _b64(secrets.token_bytes(32))
    salt = secrets.token_bytes(16)
    return NewToken(f"{PREFIX}.{token_id}.{secret}", token_id, salt.hex(), hash_secret(secret, salt).hex())


def parse_token(token: str) -> tuple[str, str] | None:
    """(token_id, secret) of a well-formed token, else None."""
    m = _TOKEN_RE.match(token or "")
    return (m.group(1), m.group(2)) if m else None


def verify_token(token: str, salt_hex: str, hash_hex: str, kdf: str = KDF) -> bool:
    """True when ``token``'s secret hashes (with the stored salt) to the stored hash."""
    parsed = parse_token(token)
    if parsed is None:
        return False
    try:
        got = hash_secret(parsed[1], bytes.fromhex(salt_hex), kdf)
    except ValueError:
        return False
    return hmac.compare_digest(got, bytes.fromhex(hash_hex))


# --- expiry ----------------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """``30d``/``12h``/``90m``/``45s``/``2w`` from now, an ISO 8601 date or time (UTC when it has
    no zone), or ``never`` (None). Raises ValueError on anything else or on a time in the past."""
    now = now or dt.datetime.now(dt.timezone.utc)
    if text is None or text.strip().lower() == "never":
        return None
    t = text.strip()
    m = _DURATION_RE.match(t)
    if m:
        if int(m.group(1)) <= 0:
            raise ValueError(f"expiry {text!r}: must be positive")
        return now + dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expiry {text!r}: use a duration (30d, 12h, 90m, 45s, 2w), an ISO date or 'never'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    if when <= now:
        raise ValueError(f"expiry {text!r}: is in the past")
    return when


def iso_utc(when: dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z (the profile's expirationTime)."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


# --- signed URLs -----------------------------------------------------------------------------------


def sign(secret: bytes, grant: dict[str, Any], ttl_seconds: float, now: float | None = None) -> tuple[str, int]:
    """(``<payload>.<signature>``, expiry in Unix milliseconds) for ``grant`` valid ``ttl_seconds``."""
    exp = int((now if now is not None else time.time()) + ttl_seconds)
    body = dict(grant, exp=exp)
    payload = _b64(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    sig = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{sig}", exp * 1000


class BadSignature(Exception):
    """A file URL that was tampered with, malformed, or has expired (the server answers 403)."""


def unsign(secret: bytes, signed: str, now: float | None = None) -> dict[str, Any]:
    """The grant of a signed string; BadSignature when it is tampered, malformed or expired."""
    payload, dot, sig = (signed or "").partition(".")
    if not dot or not payload or not sig:
        raise BadSignature("malformed")
    want = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    try:
        got = _unb64(sig)
    except (ValueError, TypeError):
        raise BadSignature("malformed") from None
    if not hmac.compare_digest(want, got):
        raise BadSignature("bad signature")
    try:
        grant = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        raise BadSignature("malformed") from None
    if not isinstance(grant, dict) or not isinstance(grant.get("exp"), int):
        raise BadSignature("malformed")
    if grant["exp"] <= (now if now is not None else time.time()):
        raise BadSignature("expired")
    return grant
