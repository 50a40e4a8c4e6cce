"""Load on the Delta Sharing server (``ptdm share serve``): concurrent recipients reading a table.

Each of ``--clients`` threads (own HTTP session, like separate recipients' clients) makes
``--reads`` reads; a read is what the stock client does for a table: POST the query, then GET every
file URL it lists, in full. Every answer is checked: the file list is the same as the first read's,
each file has its listed size and the same SHA-256 as in the first read. Prints p50/p95/max latency
of a read and of single requests, reads/s, requests/s and MB/s. With ``--lakehouse`` it then waits
for the access log's flush and counts the rows carrying this run's User-Agent: every request must
be there exactly once.

    python -m benchmarks.share_bench PROFILE.share SHARE.SCHEMA.TABLE [--clients 16] [--reads 20]
        [--lakehouse /data/lakehouse] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path


def pct(values: list[float], p: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(p / 100 * (len(v) - 1))))]


def main(argv: list[str] | None = None) -> int:
    import requests

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profile")
    ap.add_argument("table", help="share.schema.table")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--reads", type=int, default=20, help="reads per client")
    ap.add_argument("--lakehouse", help="count this run's rows in <lakehouse>/_sharing/access_log afterwards")
    ap.add_argument("--flush-wait", type=float, default=5.0, help="seconds to wait for the access log's flush")
    ap.add_argument("--markdown", help="append the results as a Markdown table to this file")
    args = ap.parse_args(argv)

    prof = json.loads(Path(args.profile).read_text())
    share, schema, table = args.table.split(".")
    endpoint = prof["endpoint"].rstrip("/")
    ua = f"share-bench/{uuid.uuid4().hex[:8]}"
    auth = {"Authorization": f"Bearer {prof['bearerToken']}", "User-Agent": ua}
    query_url = f"{endpoint}/shares/{share}/schemas/{schema}/tables/{table}/query"

    def read(sess) -> tuple[list[tuple[str, int, str]], list[float]]:
        times = []
        t0 = time.perf_counter()
        r = sess.post(query_url, json={}, headers=auth, timeout=60)
        times.append(time.perf_counter() - t0)
        r.raise_for_status()
        files = [json.loads(x)["file"] for x in r.text.splitlines()[2:] if x.strip()]
        out = []
        for f in files:
            t1 = time.perf_counter()
            g = sess.get(f["url"], headers={"User-Agent": ua}, timeout=60)
            times.append(time.perf_counter() - t1)
            g.raise_for_status()
            if len(g.content) != f["size"]:
                raise AssertionError(f"file {f['id']}: {len(g.content)} bytes, listed {f['size']}")
            out.append((f["id"], f["size"], hashlib.sha256(g.content).hexdigest()))
        return sorted(out), times

    with requests.Session() as sess:
        truth, _ = read(sess)  # the reference answer (its requests count too)
    warm_requests = 1 + len(truth)
    read_lat: list[float] = []
    req_lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    total_bytes = 0

    def client() -> None:
        nonlocal total_bytes
        with requests.Session() as sess:
            for _ in range(args.reads):
                t0 = time.perf_counter()
                try:
                    got, times = read(sess)
                except Exception as exc:  # counted, reported
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                dt_ = time.perf_counter() - t0
                with lock:
                    read_lat.append(dt_)
                    req_lat.extend(times)
                    total_bytes += sum(s for _, s, _ in got)
                    if got != truth:
                        errors.append("a read differs from the reference")

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    n_reads = len(read_lat)
    n_req = len(req_lat)
    rows = [
        ("clients x reads", f"{args.clients} x {args.reads} ({n_reads} complete, {len(errors)} failed)"),
        ("files per read", f"{len(truth)} ({sum(s for _, s, _ in truth) / 1e6:.2f} MB)"),
        ("wall time", f"{wall:.2f} s"),
        ("read latency p50 / p95 / max", f"{pct(read_lat, 50) * 1000:.0f} / {pct(read_lat, 95) * 1000:.0f} / "
                                         f"{max(read_lat) * 1000:.0f} ms" if read_lat else "-"),
        ("request latency p50 / p95", f"{pct(req_lat, 50) * 1000:.0f} / {pct(req_lat, 95) * 1000:.0f} ms" if req_lat else "-"),
        ("throughput", f"{n_reads / wall:.1f} reads/s, {n_req / wall:.1f} requests/s, {total_bytes / wall / 1e6:.1f} MB/s"),
    ]
    if args.lakehouse:
        import pyarrow.compute as pc
        from deltalake import DeltaTable

        from ptdm_spark.sharing.shares import table_uri

        time.sleep(args.flush_wait)
        log = DeltaTable(table_uri(args.lakehouse, "access_log")).to_pyarrow_table(columns=["user_agent", "status"])
        mine = log.filter(pc.equal(log["user_agent"], ua))
        sent = warm_requests + n_req
        ok = int(pc.sum(pc.equal(mine["status"], 200)).as_py() or 0)
        rows.append(("access_log rows of this run", f"{mine.num_rows} (requests sent: {sent}; status 200: {ok})"))
        if mine.num_rows != sent:
            errors.append(f"access_log holds {mine.num_rows} rows of this run, {sent} requests were sent")
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for e in sorted(set(errors))[:5]:
        print(f"ERROR: {e}", file=sys.stderr)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
    if read_lat:
        print(f"(mean read {statistics.mean(read_lat) * 1000:.0f} ms)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
