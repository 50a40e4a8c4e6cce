"""Landing-zone upload over WebHDFS (the ``hdfs`` package): local folder -> HDFS folder.

Parallel and resumable: a file already in HDFS with the same size is skipped, so rerunning
after an interruption copies only what is missing.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ptdm_spark.errors import UsageError


@dataclass
class UploadResult:
    files: int = 0
    uploaded: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0


def hdfs_path(target: str) -> str:
    """``hdfs://host:port/a/b`` or ``/a/b`` -> ``/a/b``."""
    if "://" in target:
        u = urlparse(target)
        if u.scheme != "hdfs":
            raise UsageError(f"upload target {target}: expected an hdfs:// URI or an absolute HDFS path")
        return u.path or "/"
    if not target.startswith("/"):
        raise UsageError(f"upload target {target}: expected an hdfs:// URI or an absolute HDFS path")
    return target


def upload(local_dir: str, target: str, webhdfs_url: str, user: str, workers: int,
           progress: bool = True) -> UploadResult:
    """Copy every file under ``local_dir`` to ``target`` in HDFS, skipping same-size files."""
    from hdfs import InsecureClient
    from hdfs.util import HdfsError

    src = Path(local_dir).expanduser()
    if not src.is_dir():
        raise UsageError(f"no such folder: {local_dir}")
    dest = hdfs_path(target).rstrip("/") or "/"
    client = InsecureClient(webhdfs_url, user=user or None)
    try:
        client.status("/", strict=True)
    except Exception as exc:  # requests' connection errors and HdfsError alike
        raise UsageError(f"cannot reach WebHDFS at {webhdfs_url}: {str(exc).splitlines()[0][:160]}") from None
    files = sorted(p for p in src.rglob("*") if p.is_file())
    res = UploadResult(files=len(files))
    lock = threading.Lock()
    start = time.monotonic()

    def one(p: Path) -> None:
        remote = f"{dest}/{p.relative_to(src).as_posix()}"
        size = p.stat().st_size
        try:
            st = client.status(remote, strict=False)
            if st is not None and st.get("type") == "FILE" and st.get("length") == size:
                with lock:
                    res.skipped += 1
                return
            client.upload(remote, str(p), overwrite=True)
            with lock:
                res.uploaded += 1
                res.bytes += size
        except (HdfsError, OSError) as exc:
            with lock:
                res.failed += 1
            print(f"\nupload: {p}: {exc}", file=sys.stderr)
        finally:
            if progress:
                with lock:
                    done = res.uploaded + res.skipped + res.failed
                    if done % 50 == 0 or done == res.files:
                        rate = res.bytes / max(1e-6, time.monotonic() - start) / 1e6
                        print(f"\rupload: {done}/{res.files} files ({res.uploaded} copied, {res.skipped} already there, "
                              f"{res.failed} failed) {rate:.1f} MB/s", end="", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, files))
    if progress:
        print(file=sys.stderr)
    return res


def default_user() -> str:
    return os.environ.get("HADOOP_USER_NAME") or os.environ.get("USER") or "root"
