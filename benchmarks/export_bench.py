"""Export throughput: ``ptdm export`` per format against writing the same files with a plain
one-process loop, in one run, on one release.

The loop is what a trainer would otherwise write: read the release's curated rows with pyarrow
(deltalake at the release's version) and write the folder tree, one tar per split, one ZIP, one
Parquet file per split, or the CSV manifest, in one Python process. ``ptdm export`` runs as its
own process (Spark's start-up included), as a user runs it.

    python -m benchmarks.export_bench --n 5000           # Fashion-MNIST PNGs -> lakehouse -> release
    python -m benchmarks.export_bench --n 70000 --formats folders,webdataset

Prints images/s per format and the ratio ptdm / loop.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

OUT = Path("benchmarks/out/export")
PTDM = [sys.executable, "-m", "ptdm_spark.cli"]
QUIET = ["--set", "spark.log_level=ERROR", "--set", "spark.conf.spark.ui.enabled=false"]


def ptdm(*args: str, lakehouse: Path) -> float:
    t = time.monotonic()
    subprocess.run([*PTDM, *args, "--set", f"lakehouse.root={lakehouse}", *QUIET], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def prepare(n: int, work: Path) -> Path:
    """Fashion-MNIST as n PNG files, through ptdm run, into a lakehouse with release 'bench'."""
    lakehouse = work / f"lakehouse-{n}"
    if (lakehouse / "fashion" / "releases").exists():
        return lakehouse
    src = work / f"fashion-{n}"
    if not src.exists():
        subprocess.run([sys.executable, "-m", "benchmarks.prepare", "fashion", "--n", str(n), "--out", str(src)],
                       check=True)
    print(f"preparing: ptdm run on {n} images ...", flush=True)
    ptdm("run", str(src), "--dataset", "fashion", lakehouse=lakehouse)
    ptdm("release", "create", "bench", "--dataset", "fashion", lakehouse=lakehouse)
    return lakehouse


def release_rows(lakehouse: Path) -> list[dict]:
    from deltalake import DeltaTable

    from ptdm_spark.sharing.loader import find_release

    rel = find_release(str(lakehouse), "fashion", "bench")
    t = DeltaTable(str(lakehouse / "fashion" / "curated"), version=rel["table_versions"]["curated"])
    return t.to_pyarrow_table(columns=["image_id", "label", "split", "image", "encoding", "width", "height",
                                       "source_uri"]).to_pylist()


def loop(fmt: str, lakehouse: Path, out: Path) -> float:
    """The plain loop: read the release, write the same files, one process."""
    t = time.monotonic()
    rows = sorted(release_rows(lakehouse), key=lambda r: (r["split"], r["image_id"]))
    if fmt == "folders":
        for r in rows:
            p = out / r["split"] / r["label"] / f"{r['image_id']}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(r["image"])
    elif fmt == "webdataset":
        out.mkdir(parents=True)
        tars = {}
        for r in rows:
            if r["split"] not in tars:
                tars[r["split"]] = tarfile.open(out / f"{r['split']}-000000.tar", "w")
            for name, data in ((f"{r['image_id']}.png", r["image"]), (f"{r['image_id']}.json", repr(r).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tars[r["split"]].addfile(info, io.BytesIO(data))
        for tf in tars.values():
            tf.close()
    elif fmt == "zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w") as z:
            for r in rows:
                z.writestr(f"{r['split']}/{r['label']}/{r['image_id']}.png", r["image"])
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        for split in sorted({r["split"] for r in rows}):
            (out / split).mkdir(parents=True)
            pq.write_table(pa.Table.from_pylist([r for r in rows if r["split"] == split]), out / split / "part.parquet")
    elif fmt in ("csv", "jsonl"):
        out.mkdir(parents=True)
        with open(out / "manifest.csv", "w", newline="") as f:
            w = csv.writer(f)
            for r in rows:
                w.writerow([r["image_id"], r["label"], r["split"], r["width"], r["height"], r["source_uri"]])
    return time.monotonic() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="Fashion-MNIST images (default 5000; 70000 = all)")
    ap.add_argument("--formats", default="folders,zip,webdataset,parquet,csv")
    ap.add_argument("--work", default=str(OUT))
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lakehouse = prepare(args.n, work)
    n = len(release_rows(lakehouse))
    load = os.getloadavg()[0]
    print(f"\nexport of release 'bench': {n} Fashion-MNIST images, load average at start {load:.1f}\n")
    print("| format | loop s | loop images/s | ptdm export s | ptdm images/s | ptdm / loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt in args.formats.split(","):
        target = work / "runs" / (f"{fmt}.zip" if fmt == "zip" else fmt)
        base = work / "runs" / (f"loop-{fmt}.zip" if fmt == "zip" else f"loop-{fmt}")
        for p in (target, base):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        t_loop = loop(fmt, lakehouse, base)
        t_ptdm = ptdm("export", "--dataset", "fashion", "--release", "bench", "--format", fmt, "--out", str(target),
                      lakehouse=lakehouse)
        print(f"| {fmt} | {t_loop:.1f} | {n / t_loop:,.0f} | {t_ptdm:.1f} | {n / t_ptdm:,.0f} | {t_loop / t_ptdm:.2f} |",
              flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
