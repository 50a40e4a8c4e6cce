"""The HTTP fetcher of ``ptdm collect`` against a real server on 127.0.0.1 (no Spark)."""

from __future__ import annotations

import time

import pytest

from ptdm_spark.imaging.sniff import detect_format
from ptdm_spark.io import fetch
from tests.http_images import ImageServer, png

pytestmark = pytest.mark.unit

POLICY = fetch.Policy(connect_timeout=2, read_timeout=1.0, attempts=3, backoff=0.05, max_bytes=1_000_000,
                      max_redirects=5, per_host_connections=2, threads=8)


def is_image(b: bytes) -> bool:
    return detect_format(b) is not None


@pytest.fixture(scope="module")
def server():
    with ImageServer(slow_seconds=2.5) as s:
        yield s


def run(server, paths, policy=POLICY):
    urls = [server.url(p) for p in paths]
    return {o.url.split(str(server.port), 1)[1]: o for o in fetch.fetch_all(urls, policy, is_image)}


def test_each_planted_fault_gets_its_reason(server):
    got = run(server, ["/img/1.png", "/missing.png", "/gone.png", "/flaky.png", "/slow.png", "/cut.png", "/photo",
                       "/page.png", "/hop/3", "/loop/a", "/huge.png", "/noai.png", "/busy.png", "/empty.png",
                       "/down.png"])
    reasons = {p: o.reason for p, o in got.items()}
    assert reasons == {
        "/img/1.png": None, "/missing.png": "http_404", "/gone.png": "http_4xx", "/flaky.png": None,
        "/slow.png": "timeout", "/cut.png": "connection", "/photo": None, "/page.png": "not_image",
        "/hop/3": None, "/loop/a": "redirect_loop", "/huge.png": "too_large", "/noai.png": "robots",
        "/busy.png": None, "/empty.png": "empty", "/down.png": "http_5xx",
    }
    assert got["/img/1.png"].content == png(1)  # the bytes the server sent, unchanged
    assert got["/flaky.png"].content == png(9001) and len(got["/flaky.png"].attempts) == 3
    assert [a.status for a in got["/flaky.png"].attempts] == [500, 500, 200]
    assert len(got["/missing.png"].attempts) == 1  # a 404 is not retried
    assert len(got["/slow.png"].attempts) == 3 and len(got["/down.png"].attempts) == 3
    assert got["/hop/3"].final_url.endswith("/hop/0")
    assert got["/img/1.png"].etag == '"img1"'
    # Retry-After: 1 was honoured: the second try started at least a second after the first.
    a, b = got["/busy.png"].attempts
    assert b.started_at - a.started_at >= 0.95 and a.status == 429


def test_the_configured_user_agent_is_sent():
    with ImageServer() as s:
        policy = fetch.Policy(**{**POLICY.__dict__, "user_agent": "ptdm-test/1.0"})
        assert all(o.reason is None for o in fetch.fetch_all([s.url("/img/5.png")], policy, is_image))
    assert dict(s.agents) == {"ptdm-test/1.0": 1}


def test_permanent_and_transient():
    assert fetch.permanent("http_404") and fetch.permanent("robots") and fetch.permanent("not_image")
    assert not fetch.permanent("http_5xx") and not fetch.permanent("timeout") and not fetch.permanent(None)
    assert not fetch.permanent("http_4xx", 429) and fetch.permanent("http_4xx", 403)


def test_per_host_connections_hold_and_two_hosts_run_side_by_side():
    with ImageServer(hold_seconds=0.2) as s:
        urls = [s.url(f"/img/{i}.png") for i in range(12)] + [s.url(f"/img/{i}.png", "localhost") for i in range(12)]
        t0 = time.monotonic()
        out = list(fetch.fetch_all(urls, POLICY, is_image))
        took = time.monotonic() - t0
    assert all(o.reason is None for o in out)
    assert s.max_in_flight["127.0.0.1"] == 2 and s.max_in_flight["localhost"] == 2
    assert took < 12 * 0.2 * 1.5  # the two hosts overlapped (serial per host would be 1.2 s each)


def test_rate_limit_paces_a_host():
    policy = fetch.Policy(**{**POLICY.__dict__, "per_host_rate": 10.0})
    with ImageServer() as s:
        t0 = time.monotonic()
        out = list(fetch.fetch_all([s.url(f"/img/{i}.png") for i in range(11)], policy, is_image))
        took = time.monotonic() - t0
    assert all(o.reason is None for o in out)
    assert took >= 0.95  # 11 requests at 10/s: the 11th starts 1 s after the first


def test_dns_failure_and_bad_url():
    out = {o.url: o for o in fetch.fetch_all(["http://no-such-host.invalid/a.png", "ftp://x/y.png", "http://127.0.0.1:9/a.png"],
                                                 fetch.Policy(attempts=1), is_image)}
    assert out["http://no-such-host.invalid/a.png"].reason == "dns"
    assert out["ftp://x/y.png"].reason == "bad_url"
    assert out["http://127.0.0.1:9/a.png"].reason == "connection"  # refused
