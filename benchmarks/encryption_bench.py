"""The cost of encryption at rest (issue #18): the ``process`` stage with and without
``security.encryption.mode=parquet`` on the same images, in one invocation.

The images (default: 2,000 Fashion-MNIST PNGs written by ``benchmarks.prepare``, or ``--folder``)
are ingested once per mode and round into a fresh lakehouse — plain, encrypted (a key file with two
256-bit keys made here), or parquet-only (encrypted, without Spark's shuffle and spill encryption)
— and ``ptdm process`` runs on each, ``--pairs`` rounds with each mode first in turn, each command
a new process as a user would run it. Prints the stage times (the "succeeded in" of ``ptdm
process``), the decode-score-normalize-write step, the table sizes, and each mode's ratio to the
first mode (medians).

    python -m benchmarks.encryption_bench [--n 2000] [--folder DIR] [--pairs 2] [--modes plain,encrypted]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.commands import ROOT, ptdm


def seconds(pattern: str, out: str) -> float:
    m = re.search(pattern, out)
    return float(m.group(1)) if m else float("nan")


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.parquet")) / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="Fashion-MNIST images to write (without --folder)")
    ap.add_argument("--folder", type=Path, help="a folder of images to use instead")
    ap.add_argument("--pairs", type=int, default=2, help="process runs per mode (median reported)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--modes", default="plain,encrypted",
                    help="comma-separated, of plain, encrypted, parquet-only (encrypted without Spark's I/O encryption)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="encryption-bench-"))
    folder = args.folder
    if folder is None:
        folder = work / "images"
        if not folder.exists():
            subprocess.run([sys.executable, "-m", "benchmarks.prepare", "fashion", "--n", str(args.n),
                            "--out", str(folder)], check=True, cwd=ROOT)
    keys = work / "keys"
    old = os.umask(0o077)
    keys.write_text("".join(f"{k}: {base64.b64encode(os.urandom(32)).decode()}\n" for k in ("footer", "images")))
    os.umask(old)
    on = ["--set", "security.encryption.mode=parquet", "--set", f"security.encryption.key_file={keys}"]
    modes = {"plain": [], "encrypted": on,
             # the Parquet encryption alone, without Spark's shuffle and spill encryption
             "parquet-only": [*on, "--set", "spark.conf.spark.io.encryption.enabled=false"]}
    modes = {m: modes[m] for m in args.modes.split(",")}
    stage: dict[str, list[float]] = {m: [] for m in modes}
    step: dict[str, list[float]] = {m: [] for m in modes}
    sizes: dict[str, tuple[float, float]] = {}
    for i in range(args.pairs):
        order = list(modes)[i % len(modes):] + list(modes)[:i % len(modes)]  # each mode first in turn
        for mode in order:
            lh = work / f"lakehouse-{mode}-{i}"
            sets = ["--set", f"lakehouse.root={lh}", "--set", "spark.log_level=ERROR", "--set", "spark.progress=off",
                    *modes[mode]]
            ptdm("ingest", str(folder), "--dataset", "bench", *sets)
            wall, out = ptdm("process", "--dataset", "bench", *sets)
            stage[mode].append(seconds(r"\[process\] succeeded in ([0-9.]+)s", out))
            step[mode].append(seconds(r"\[process\] decoded, scored, normalized and wrote .*\(([0-9.]+)s[,)]", out))
            sizes[mode] = (size_mb(lh / "bench" / "images"), size_mb(lh / "bench" / "raw_images"))
            print(f"round {i + 1} {mode:12s} process stage {stage[mode][-1]:6.1f} s   step {step[mode][-1]:6.1f} s   "
                  f"wall {wall:6.1f} s", flush=True)
    for mode in modes:
        print(f"{mode:12s} images {sizes[mode][0]:.2f} MB, raw_images {sizes[mode][1]:.2f} MB")
    base = next(iter(modes))
    b, bs = statistics.median(stage[base]), statistics.median(step[base])
    for mode in list(modes)[1:]:
        e, es = statistics.median(stage[mode]), statistics.median(step[mode])
        print(f"{mode} / {base}: process stage {e / b:.2f} ({e:.1f} s / {b:.1f} s), "
              f"step {es / bs:.2f} ({es:.1f} s / {bs:.1f} s); medians of {args.pairs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
