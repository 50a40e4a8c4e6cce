"""``ptdm collect`` against a plain one-process download loop, in one run, on the same URLs.

A real HTTP server on 127.0.0.1 (``tests/http_images.py``) serves N small PNGs under two host
names (127.0.0.1 and localhost), optionally after ``--latency`` seconds per request (a remote
host's round trip; at 0 the benchmark measures ptdm's own overhead only). The baseline fetches
them one after another with ``requests`` (the same timeouts), sniffs each body and writes the
images to one Parquet file; then ``ptdm collect`` (a new process: Spark's start-up included) fetches the same URLs into a fresh
lakehouse. Prints images/s of each, the ratio, and images/s per core.

    .venv/bin/python -m benchmarks.collect_bench --n 3000
    .venv/bin/python -m benchmarks.collect_bench --n 3000 --latency 0.05
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def baseline(urls: list[str], out: Path, connect: float, read: float) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import requests

    from ptdm_spark.imaging.sniff import detect_format

    t0 = time.monotonic()
    rows = {"url": [], "content": []}
    with requests.Session() as s:
        for u in urls:
            r = s.get(u, timeout=(connect, read))
            if r.status_code == 200 and detect_format(r.content):
                rows["url"].append(u)
                rows["content"].append(r.content)
    pq.write_table(pa.table(rows), out)
    assert len(rows["url"]) == len(urls), "the baseline missed images"
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="images (default 3000)")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--latency", type=float, default=0.0,
                    help="seconds the server waits before each answer, as a remote host's round trip would (default 0)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.http_images import ImageServer

    cores = int(re.search(r"\[(\d+|\*)\]", args.master).group(1).replace("*", str(os.cpu_count())))
    with tempfile.TemporaryDirectory() as tmp, ImageServer(hold_seconds=args.latency) as server:
        tmp = Path(tmp)
        urls = [server.url(f"/img/{i}.png", "127.0.0.1" if i % 2 else "localhost") for i in range(args.n)]
        lst = tmp / "urls.csv"
        lst.write_text("url\n" + "\n".join(urls) + "\n")
        base_s = baseline(urls, tmp / "baseline.parquet", 10, 30)
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "ptdm_spark.cli", "collect", str(lst), "--dataset", "bench", "--master", args.master,
             "--set", f"lakehouse.root={tmp / 'lh'}", "--set", "spark.progress=off",
             "--set", "spark.conf.spark.ui.enabled=false"],
            cwd=ROOT, capture_output=True, text=True)
        ptdm_s = time.monotonic() - t0
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        batch = re.findall(r"\[collect\] batch \d+/\d+: .*\(([\d.]+)s", proc.stderr)
        fetch_s = sum(float(x) for x in batch)
        requests_served = sum(server.requests.values())
    print(f"collect benchmark: {args.n} PNGs of ~1.9 KB from a local server answering after {args.latency * 1000:.0f} ms, "
          f"two host names, {args.master}")
    print(f"{'run':44} {'seconds':>8} {'images/s':>9}")
    print(f"{'baseline loop (1 process, requests)':44} {base_s:8.1f} {args.n / base_s:9.0f}")
    print(f"{'ptdm collect (incl. Spark start-up)':44} {ptdm_s:8.1f} {args.n / ptdm_s:9.0f}")
    print(f"{'  of which the fetch-and-write batches':44} {fetch_s:8.1f} {args.n / fetch_s:9.0f}")
    print(f"ratio (ptdm / baseline, whole command): {base_s / ptdm_s:.2f}; batches only: {base_s / fetch_s:.2f}")
    print(f"images/s per core (batches): {args.n / fetch_s / cores:.0f}; server saw {requests_served} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
