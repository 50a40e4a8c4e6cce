"""``ptdm collect`` against a real HTTP server on 127.0.0.1 with planted faults.

The truth is the test's own: the paths it planted, the bytes the server sent, and the server's
own counts of requests and of connections open at once per host.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import PTDM, ROOT, overrides_for
from tests.http_images import ImageServer, jpeg, png

pytestmark = pytest.mark.spark

FAST = ["collect.read_timeout=1", "collect.connect_timeout=2", "collect.backoff=0.05", "collect.attempts=3",
        "collect.max_attempts=6", "collect.per_host_connections=2"]

# path -> where it must end: None = raw_images, else the rejects reason
PLANTED = {
    "/img/1.png": None, "/img/2.png": None, "/img/3.png": None,
    "/missing.png": "http_404", "/gone.png": "http_4xx", "/flaky.png": None, "/down.png": "http_5xx",
    "/slow.png": "timeout", "/cut.png": "connection", "/photo": None, "/page.png": "not_image",
    "/hop/3": None, "/loop/a": "redirect_loop", "/huge.png": "too_large", "/noai.png": "robots",
    "/busy.png": None, "/empty.png": "empty",
}
TRANSIENT = {"/down.png", "/slow.png", "/cut.png"}


def sets(*items):
    return [a for i in items for a in ("--set", i)]


@pytest.fixture(scope="module")
def server():
    with ImageServer(slow_seconds=2.0) as s:
        yield s


@pytest.fixture(scope="module")
def collected(spark, ptdm_module, server, tmp_path_factory):
    """One collect of the planted list (+ a URL twice, + a second URL for image 1's bytes)."""
    d = tmp_path_factory.mktemp("urls")
    lst = d / "urls.csv"
    with open(lst, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["url", "label", "license", "caption"])
        for i, path in enumerate(PLANTED):
            w.writerow([server.url(path), f"c{i % 2}", "CC-BY-4.0", f"caption, with a comma {i}"])
        w.writerow([server.url("/img/1.png"), "c0", "", ""])  # listed twice: fetched once
        server.extra["/copy-of-1.png"] = (200, {"Content-Type": "image/png"}, png(1))
        w.writerow([server.url("/copy-of-1.png"), "c0", "", ""])  # same bytes as /img/1.png
    before = dict(server.requests)
    status, out = ptdm_module("collect", str(lst), "--dataset", "web", *sets(*FAST))
    assert status == 0, out
    return lst, out, before


def table(spark, cfg, name):
    return spark.read.format("delta").load(cfg.lakehouse.table_path("web", name))


def test_every_url_ends_in_exactly_one_place_with_its_reason(spark, cfg, server, collected):
    raw = {r.source_uri: r for r in table(spark, cfg, "raw_images").collect()}
    rej = {r.source_uri: r.reason for r in table(spark, cfg, "rejects").filter("stage = 'collect'").collect()}
    want_raw = {server.url(p) for p, why in PLANTED.items() if why is None} | {server.url("/copy-of-1.png")}
    want_rej = {server.url(p): why for p, why in PLANTED.items() if why}
    assert set(raw) == want_raw
    assert rej == want_rej
    # the bytes are what the server sent
    assert raw[server.url("/img/2.png")].content == png(2)
    assert raw[server.url("/photo")].content == jpeg(9004)  # a JPEG served as text/html is a JPEG
    assert raw[server.url("/copy-of-1.png")].image_id == raw[server.url("/img/1.png")].image_id
    # provenance
    hop = raw[server.url("/hop/3")].provenance
    assert hop.final_url == server.url("/hop/0") and hop.http_status == 200
    img = raw[server.url("/img/1.png")]
    assert img.provenance.etag == '"img1"' and img.provenance.license == "CC-BY-4.0"
    assert img.provenance.caption == "caption, with a comma 0" and img.label == "c0"
    assert img.source_modified_at is not None and img.source_modified_at.year == 2026
    assert img.source_format == "url"


def test_fetch_log_holds_every_try(spark, cfg, server, collected):
    _, _, before = collected
    log = table(spark, cfg, "fetch_log")
    flaky = sorted((r.attempt, r.status, r.reason) for r in log.filter(f"url = '{server.url('/flaky.png')}'").collect())
    assert flaky == [(1, 500, "http_5xx"), (2, 500, "http_5xx"), (3, 200, None)]
    # the log's tries per URL equal the requests the server counted (a redirect chain is one try)
    tries = {r.url: r.n for r in log.groupBy("url").count().withColumnRenamed("count", "n").collect()}
    for path in ("/flaky.png", "/down.png", "/missing.png", "/busy.png", "/img/2.png", "/slow.png"):
        assert tries[server.url(path)] == server.requests[path] - before.get(path, 0), path
    assert server.requests["/img/1.png"] - before.get("/img/1.png", 0) == 1  # listed twice, fetched once


def test_rerun_retries_only_the_transient_failures(spark, cfg, server, collected, ptdm_module):
    lst, _, _ = collected
    before = dict(server.requests)
    status, out = ptdm_module("collect", str(lst), "--dataset", "web", *sets(*FAST))
    assert status == 0, out
    again = {p for p in server.requests if server.requests[p] > before.get(p, 0)}
    assert again == TRANSIENT
    assert all(server.requests[p] - before[p] == 3 for p in TRANSIENT)  # 3 more tries each
    # still each URL in exactly one place; tries are numbered on from the first run's
    rej = {r.source_uri: r.reason for r in table(spark, cfg, "rejects").filter("stage = 'collect'").collect()}
    assert rej[server.url("/down.png")] == "http_5xx"
    attempts = sorted(r.attempt for r in table(spark, cfg, "fetch_log")
                      .filter(f"url = '{server.url('/down.png')}'").collect())
    assert attempts == [1, 2, 3, 4, 5, 6]
    # a third run: out of tries (collect.max_attempts=6), nothing is requested
    before = dict(server.requests)
    status, out = ptdm_module("collect", str(lst), "--dataset", "web", *sets(*FAST))
    assert status == 0 and dict(server.requests) == before, out
    assert "out of tries" in out


def test_per_host_connections_hold_in_spark_tasks(spark, ptdm_module, tmp_path):
    with ImageServer(hold_seconds=0.15) as s:
        lst = tmp_path / "many.jsonl"
        with open(lst, "w") as f:
            for i in range(40):
                host = "127.0.0.1" if i % 2 else "localhost"
                f.write(f'{{"url": "{s.url(f"/img/{100 + i}.png", host)}"}}\n')
        status, out = ptdm_module("collect", str(lst), "--dataset", "webhosts", *sets(*FAST))
        assert status == 0, out
    assert s.max_in_flight["127.0.0.1"] == 2 and s.max_in_flight["localhost"] == 2
    assert sum(s.requests.values()) == 40


def test_misuse_is_one_line(ptdm_module, tmp_path):
    bad = tmp_path / "nourl.csv"
    bad.write_text("link,label\nhttp://x/a.png,a\n")
    status, out = ptdm_module("collect", str(bad), "--dataset", "webbad")
    assert status == 2 and "no 'url' column" in out and len(out.strip().splitlines()) == 1
    status, out = ptdm_module("collect", str(tmp_path / "nope.csv"), "--dataset", "webbad")
    assert status == 2 and "no such URL list" in out
    (tmp_path / "list.txt").write_text("http://x/a.png\n")
    status, out = ptdm_module("collect", str(tmp_path / "list.txt"), "--dataset", "webbad")
    assert status == 2 and ".csv, .jsonl" in out


@pytest.mark.slow
def test_killed_collect_rerun_fetches_no_success_twice(spark, tmp_path):
    with ImageServer() as s:
        lst = tmp_path / "urls.csv"
        lst.write_text("url\n" + "".join(s.url(f"/img/{200 + i}.png") + "\n" for i in range(30)))
        lh = tmp_path / "lh"
        pause = tmp_path / "pause"
        pause.mkdir()
        args = [*PTDM, "collect", str(lst), "--dataset", "webkill", *sets(*overrides_for(lh), *FAST,
                                                                              "collect.batch_urls=10")]
        env = {**os.environ, "PTDM_PAUSE_AT": "collect.batch", "PTDM_PAUSE_DIR": str(pause)}
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        deadline = time.monotonic() + 300
        while not (pause / "collect.batch.reached").exists():  # batch 1 of 3 committed
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        uri = f"{lh.as_uri()}/webkill/raw_images"
        first = {r.source_uri for r in spark.read.format("delta").load(uri).collect()}
        assert 0 < len(first) < 30
        before = dict(s.requests)
        rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        refetched = {p for p in s.requests if s.requests[p] > before.get(p, 0)}
    assert not {s.url(p) for p in refetched} & first  # nothing collected before was fetched again
    rows = spark.read.format("delta").load(uri).collect()
    assert len(rows) == 30 and len({r.source_uri for r in rows}) == 30
    assert all(v == 1 for v in s.requests.values())  # every image fetched exactly once over both runs
