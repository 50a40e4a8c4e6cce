"""Fetching images over HTTP(S), politely: the per-URL work of ``ptdm collect``.

No pyspark here: ``fetch_all`` is what each Spark task runs over its URLs (one host's URLs always
land in one task, so the per-host limits below hold for the whole job).

For each URL: up to ``attempts`` tries, each with connect and read timeouts; 429, 5xx, timeouts
and broken connections are retried with exponential backoff (a 429/503's ``Retry-After`` is
honoured when it is not longer than ``max_retry_after``); redirects are followed by hand up to
``max_redirects`` (a URL seen twice is a loop); the body is read up to ``max_bytes`` (a larger
``Content-Length`` is refused before reading); ``X-Robots-Tag: noai`` / ``noimageai`` is honoured;
and what arrives is sniffed by content, never trusted by its ``Content-Type``. Every try is one
:class:`Attempt` (the ``fetch_log`` rows); the last one decides the URL's :class:`Outcome`.
"""

from __future__ import annotations

import email.utils
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from ptdm_spark.imaging.reasons import (
    BAD_URL,
    CONNECTION,
    DNS,
    EMPTY,
    HTTP_4XX,
    HTTP_5XX,
    HTTP_404,
    NOT_IMAGE,
    REDIRECT_LOOP,
    ROBOTS,
    TIMEOUT,
    TOO_LARGE,
)

# Worth another try, in this run (with backoff) or a later one.
TRANSIENT = frozenset({HTTP_5XX, TIMEOUT, DNS, CONNECTION})
TRANSIENT_STATUS = frozenset({408, 425, 429})  # 4xx that mean "not now"
ROBOTS_TOKENS = ("noai", "noimageai")


@dataclass(frozen=True)
class Policy:
    """How to fetch (``collect.*`` in the config)."""

    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    attempts: int = 3  # tries per URL in one run
    backoff: float = 0.5  # seconds before the 2nd try; doubles each time
    max_retry_after: float = 30.0  # a longer Retry-After ends this run's tries (a later run retries)
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = "ptdm-spark"
    honour_robots: bool = True
    per_host_connections: int = 2
    per_host_rate: float = 0.0  # requests per second per host; 0 = no limit
    threads: int = 16  # concurrent requests per task, across its hosts


@dataclass
class Attempt:
    attempt: int  # 1-based, within this run
    status: int | None  # the last HTTP status seen (after redirects)
    reason: str | None  # None = success
    error: str | None
    elapsed_ms: int
    final_url: str | None
    started_at: float


@dataclass
class Outcome:
    url: str
    attempts: list[Attempt] = field(default_factory=list)
    content: bytes | None = None
    status: int | None = None
    final_url: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None
    fetched_at: float | None = None

    @property
    def reason(self) -> str | None:
        return self.attempts[-1].reason if self.attempts else None

    @property
    def error(self) -> str | None:
        return self.attempts[-1].error if self.attempts else None


class _Fail(Exception):
    def __init__(self, reason: str, error: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(error)
        self.reason, self.error, self.status, self.retry_after = reason, error, status, retry_after


def host_of(url: str) -> str:
    """The host a URL's limits apply to ('' for a URL without one)."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


class _Host:
    """One host's connection slots and request pacing, shared by the task's threads."""

    def __init__(self, connections: int, rate: float):
        self.slots = threading.BoundedSemaphore(max(1, connections))
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.lock = threading.Lock()
        self.next_at = 0.0

    def pace(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            wait = self.next_at - now
            self.next_at = max(now, self.next_at) + self.interval
        if wait > 0:
            time.sleep(wait)


def fetch_all(urls: Iterable[str], policy: Policy, is_image: Callable[[bytes], bool],
              prior_attempts: Callable[[str], int] = lambda u: 0, max_attempts: int | None = None) -> Iterator[Outcome]:
    """Fetch ``urls`` with ``policy.threads`` threads, at most ``per_host_connections`` at a time
    per host and ``per_host_rate`` requests/s per host; yields an :class:`Outcome` per URL as it
    finishes. ``max_attempts`` caps the tries over all runs (``prior_attempts(url)`` made before)."""
    import urllib3

    pool = urllib3.PoolManager(num_pools=256, maxsize=max(1, policy.per_host_connections), retries=False,
                               timeout=urllib3.Timeout(connect=policy.connect_timeout, read=policy.read_timeout),
                               headers={"User-Agent": policy.user_agent})
    hosts: dict[str, _Host] = {}
    hosts_lock = threading.Lock()

    def host(url: str) -> _Host:
        name = host_of(url)
        with hosts_lock:
            if name not in hosts:
                hosts[name] = _Host(policy.per_host_connections, policy.per_host_rate)
            return hosts[name]

    def one(url: str) -> Outcome:
        budget = policy.attempts
        if max_attempts is not None:
            budget = max(1, min(budget, max_attempts - prior_attempts(url)))
        return fetch_one(pool, url, policy, is_image, host, budget)

    with ThreadPoolExecutor(max_workers=max(1, policy.threads)) as ex:
        yield from ex.map(one, urls)
    pool.clear()


def fetch_one(pool, url: str, policy: Policy, is_image: Callable[[bytes], bool],
              host: Callable[[str], _Host], budget: int) -> Outcome:
    out = Outcome(url=url)
    for n in range(1, budget + 1):
        started, t0 = time.time(), time.monotonic()
        try:
            got = _get(pool, url, policy, host)
        except _Fail as f:
            out.attempts.append(Attempt(n, f.status, f.reason, f.error[:500], int((time.monotonic() - t0) * 1000),
                                        None, started))
            out.status = f.status
            transient = not permanent(f.reason, f.status)
            if not transient or n == budget:
                break
            wait = policy.backoff * 2 ** (n - 1)
            if f.retry_after is not None:
                if f.retry_after > policy.max_retry_after:
                    break  # the server asks for longer than we wait: a later run tries again
                wait = max(wait, f.retry_after)
            time.sleep(wait)
            continue
        status, final_url, body, headers = got
        reason, error = None, None
        if not body:
            reason, error = EMPTY, "the response has no body"
        elif not is_image(body):
            reason, error = NOT_IMAGE, f"not an image (served as {headers.get('Content-Type') or 'no type'})"
        out.attempts.append(Attempt(n, status, reason, error, int((time.monotonic() - t0) * 1000), final_url, started))
        out.status, out.final_url = status, final_url
        if reason is None:
            out.content, out.fetched_at = body, time.time()
            out.etag, out.last_modified = headers.get("ETag"), headers.get("Last-Modified")
            out.content_type = headers.get("Content-Type")
        break
    return out


def _get(pool, url: str, policy: Policy, host: Callable[[str], _Host]):
    """One try: follow redirects, check the headers, read the body. Returns
    (status, final_url, body, headers) or raises :class:`_Fail`."""
    from urllib3 import exceptions as ux

    seen = {url}
    current = url
    for _ in range(policy.max_redirects + 1):
        parts = urlsplit(current)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Fail(BAD_URL, f"not an http(s) URL: {current[:200]}")
        h = host(current)
        with h.slots:
            h.pace()
            try:
                r = pool.request("GET", current, redirect=False, preload_content=False, decode_content=True)
            except ux.MaxRetryError as exc:  # retries=False still wraps some errors
                raise _classify(exc.reason or exc) from None
            except (ux.HTTPError, OSError) as exc:
                raise _classify(exc) from None
            try:
                if r.status in (301, 302, 303, 307, 308) and r.headers.get("Location"):
                    nxt = urljoin(current, r.headers["Location"])
                    r.drain_conn()
                    if nxt in seen:
                        raise _Fail(REDIRECT_LOOP, f"redirect loop: {nxt[:200]} again", r.status)
                    seen.add(nxt)
                    current = nxt
                    continue
                if r.status != 200:
                    retry_after = _retry_after(r.headers.get("Retry-After"))
                    r.drain_conn()
                    raise _Fail(_status_reason(r.status), f"HTTP {r.status} {r.reason or ''}".strip(), r.status,
                                retry_after)
                if policy.honour_robots and _robots_says_no(r.headers.get_all("X-Robots-Tag") or []):
                    r.drain_conn()
                    raise _Fail(ROBOTS, f"X-Robots-Tag: {', '.join(r.headers.get_all('X-Robots-Tag'))}"[:200], r.status)
                declared = r.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                    r.release_conn()
                    raise _Fail(TOO_LARGE, f"Content-Length {declared} > collect.max_bytes {policy.max_bytes}", r.status)
                body = _read_capped(r, policy.max_bytes)
                return r.status, current, body, r.headers
            except (ux.ReadTimeoutError, TimeoutError) as exc:
                raise _Fail(TIMEOUT, f"read timed out after {policy.read_timeout:g}s ({type(exc).__name__})") from None
            except (ux.ProtocolError, ux.IncompleteRead, ux.DecodeError) as exc:
                raise _Fail(CONNECTION, f"the body was cut short or garbled: {str(exc)[:200]}") from None
            finally:
                r.release_conn()
    raise _Fail(REDIRECT_LOOP, f"more than collect.max_redirects={policy.max_redirects} redirects")


def _read_capped(r, limit: int) -> bytes:
    chunks, total = [], 0
    for chunk in r.stream(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise _Fail(TOO_LARGE, f"body over collect.max_bytes {limit}", r.status)
        chunks.append(chunk)
    declared = r.headers.get("Content-Length")
    if declared and declared.isdigit() and total < int(declared) and not r.headers.get("Content-Encoding"):
        raise _Fail(CONNECTION, f"the body was cut short: {total} of {declared} bytes", r.status)
    return b"".join(chunks)


def _classify(exc: BaseException) -> _Fail:
    from urllib3 import exceptions as ux

    text = f"{type(exc).__name__}: {exc}"[:300]
    # Order matters: urllib3's NewConnectionError (and NameResolutionError) subclass ConnectTimeoutError.
    if isinstance(exc, ux.NameResolutionError) or isinstance(exc.__cause__, socket.gaierror):
        return _Fail(DNS, text)
    if isinstance(exc, ux.NewConnectionError):
        return _Fail(CONNECTION, text)
    if isinstance(exc, (ux.ConnectTimeoutError, ux.ReadTimeoutError, TimeoutError)):
        return _Fail(TIMEOUT, text)
    if isinstance(exc, ux.LocationParseError):
        return _Fail(BAD_URL, text)
    return _Fail(CONNECTION, text)


def _status_reason(status: int) -> str:
    if status == 404 or status == 410:
        return HTTP_404
    if 500 <= status < 600:
        return HTTP_5XX
    return HTTP_4XX


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def http_date(value: str | None) -> float | None:
    """An HTTP date (``Last-Modified``) as epoch seconds; None when absent or unparseable."""
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _robots_says_no(values: list[str]) -> bool:
    """``X-Robots-Tag: noai`` / ``noimageai`` (possibly ``bot: noai``, comma separated)."""
    for value in values:
        for token in value.lower().replace(":", ",").split(","):
            if token.strip() in ROBOTS_TOKENS:
                return True
    return False


def permanent(reason: str | None, status: int | None = None) -> bool:
    """A failure no later run should retry (404, robots, not an image, too large, a loop...);
    5xx, 408/429, timeouts and broken connections are worth another try."""
    return reason is not None and reason not in TRANSIENT and status not in TRANSIENT_STATUS
