"""Benchmark harness: the pipeline against the script people would otherwise write.

One invocation, same input, side by side:

* **baseline**: one Python process looping over the files doing the same per-image work as the
  pipeline (read, SHA-256, decode, validate, quality scores, perceptual hashes, normalize,
  encode, pixel hash) and writing Parquet;
* **pipeline**: ``ptdm run`` in local mode on both cores, Spark's start-up included, with the
  time of each stage.

Prints images per second, the ratio pipeline / baseline, the peak memory (RSS) of the driver
JVM and of the Python workers (sampled from /proc every 0.1 s), Spark's start-up (until the
first stage begins), the job profile from Spark's event log and each stage's progress lines.

    python -m benchmarks.harness benchmarks/out/data/fashion-png [--label NAME] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def list_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in EXTS)


def baseline(files: list[Path], out: Path) -> dict:
    """The single-process loop, in a child process so that its peak RSS is its own."""
    code = (
        "import sys, json; from benchmarks.harness import _baseline_loop; "
        "print(json.dumps(_baseline_loop(sys.argv[1], sys.argv[2])))"
    )
    listing = out.with_suffix(".txt")
    listing.write_text("\n".join(str(f) for f in files))
    t = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, str(listing), str(out)], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    import json

    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["wall"] = time.monotonic() - t
    return res


def _baseline_loop(listing: str, out: str) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ptdm_spark.config import load_config
    from ptdm_spark.imaging.cv import cv2
    from ptdm_spark.imaging.pipeline import Params, process_image

    cv2.setNumThreads(1)  # what the pipeline's workers do: one core each; the loop gets one core
    params = Params.from_config(load_config().process)
    files = Path(listing).read_text().splitlines()
    t = time.monotonic()
    writer = None
    batch: list[dict] = []
    batch_bytes = ok = 0
    for f in files:
        data = Path(f).read_bytes()
        rec = process_image(data, params)
        rec["image_id"] = hashlib.sha256(data).hexdigest()
        rec["source_uri"] = f
        ok += rec["reason"] is None
        batch.append(rec)
        batch_bytes += len(rec["image"] or b"")
        if len(batch) >= 2048 or batch_bytes >= 32 << 20:  # bounded like the pipeline's batches
            batch_bytes = 0
            table = pa.Table.from_pylist(batch)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            batch = []
    if batch:
        table = pa.Table.from_pylist(batch)
        writer = writer or pq.ParquetWriter(out, table.schema)
        writer.write_table(table)
    if writer:
        writer.close()
    return {"seconds": time.monotonic() - t, "images": len(files), "ok": ok,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


class TreeSampler(threading.Thread):
    """Peak RSS of the JVM(s) and of the Python workers under a process, from /proc."""

    def __init__(self, pid: int, every: float = 0.1):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.jvm_peak = self.worker_peak = self.workers_sum_peak = 0
        self.stop = threading.Event()

    def _children(self) -> dict[int, list[int]]:
        kids: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                kids.setdefault(ppid, []).append(int(d))
        return kids

    @staticmethod
    def _rss(pid: int) -> tuple[str, int]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            name = re.search(r"^Name:\s+(\S+)", status, re.M).group(1)
            rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1)) * 1024
            return name, rss
        except (OSError, AttributeError):
            return "", 0

    def run(self) -> None:
        while not self.stop.is_set():
            kids = self._children()
            jvm, workers = 0, []
            todo = [(self.pid, False)]
            while todo:
                pid, under_jvm = todo.pop()
                name, rss = self._rss(pid)
                if name == "java":
                    jvm = max(jvm, rss)
                elif name.startswith("python") and under_jvm:  # pyspark.daemon and its workers
                    workers.append(rss)
                todo += [(k, under_jvm or name == "java") for k in kids.get(pid, [])]
            self.jvm_peak = max(self.jvm_peak, jvm)
            self.worker_peak = max([self.worker_peak, *workers])
            self.workers_sum_peak = max(self.workers_sum_peak, sum(workers))
            self.stop.wait(self.every)


def pipeline(folder: Path, lakehouse: Path, extra: list[str], events: Path | None = None) -> dict:
    cmd = [str(ROOT / ".venv" / "bin" / "ptdm"), "run", str(folder), "--dataset", "bench",
           "--set", f"lakehouse.root={lakehouse}", "--set", "spark.progress=false", *extra]
    if events is not None:  # Spark's event log, uncompressed: every job with its start and end
        events.mkdir(parents=True, exist_ok=True)
        cmd += ["--set", "spark.conf.spark.eventLog.enabled=true", "--set", "spark.conf.spark.eventLog.compress=false",
                "--set", f"spark.conf.spark.eventLog.dir={events.as_uri()}"]
    t = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    err_lines: list[str] = []
    first_stage: list[float] = []

    def read_err() -> None:  # the time the first stage starts = Spark's start-up
        for line in proc.stderr:
            if not first_stage and line.startswith("[ingest] run "):
                first_stage.append(time.monotonic() - t)
            err_lines.append(line)

    reader = threading.Thread(target=read_err, daemon=True)
    reader.start()
    out = proc.stdout.read()
    proc.wait()
    reader.join()
    wall = time.monotonic() - t
    sampler.stop.set()
    sampler.join()
    err = "".join(err_lines)
    if proc.returncode != 0:
        raise SystemExit(f"ptdm run failed ({proc.returncode}):\n{err[-3000:]}")
    stages = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\[(\w+)\] succeeded in ([\d.]+)s", err, re.M)}
    images = int(re.search(r"in images\s+(\d+)", out).group(1))
    return {"wall": wall, "stages": stages, "images": images, "output": out, "startup": first_stage[0] if first_stage else 0.0,
            "laps": re.findall(r"^\[\w+\] .*\([\d.]+s(?:, [^)]*)?\)$", err, re.M),  # "(12.3s)" or "(12.3s, 584 images/s)"
            "jvm_peak_mb": sampler.jvm_peak / 2**20, "worker_peak_mb": sampler.worker_peak / 2**20,
            "workers_sum_peak_mb": sampler.workers_sum_peak / 2**20}


def job_profile(events: Path) -> dict:
    """From Spark's event log: how many jobs ran, how long they ran (the union of their
    intervals: jobs may overlap), and the longest ones by what started them."""
    import json

    jobs: dict[int, dict] = {}
    for f in events.rglob("*"):
        if not f.is_file() or f.name.startswith("."):
            continue
        for line in f.open():
            e = json.loads(line)
            if e["Event"] == "SparkListenerJobStart":
                names = [st["Stage Name"] for st in e["Stage Infos"]] or ["?"]
                jobs[e["Job ID"]] = {"start": e["Submission Time"], "what": names[-1].split(" at ")[0]}
            elif e["Event"] == "SparkListenerJobEnd" and e["Job ID"] in jobs:
                jobs[e["Job ID"]]["end"] = e["Completion Time"]
    spans = sorted((j["start"], j["end"]) for j in jobs.values() if "end" in j)
    busy, cur_start, cur_end = 0, None, None
    for a, b in spans:
        if cur_end is None or a > cur_end:
            busy += (cur_end - cur_start) if cur_end is not None else 0
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    busy += (cur_end - cur_start) if cur_end is not None else 0
    longest = sorted((j["end"] - j["start"], j["what"]) for j in jobs.values() if "end" in j)[::-1][:5]
    return {"jobs": len(jobs), "busy_s": busy / 1000, "longest": [(ms / 1000, what) for ms, what in longest]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", type=Path)
    p.add_argument("--label", default=None, help="name of the input in the results table")
    p.add_argument("--markdown", type=Path, help="append the results table to this file")
    p.add_argument("--set", action="append", default=[], dest="overrides", help="passed to ptdm run")
    p.add_argument("--skip-baseline", action="store_true", help="run the pipeline only (memory runs)")
    a = p.parse_args(argv)
    files = list_files(a.folder)
    if not files:
        print(f"harness: no image files under {a.folder}", file=sys.stderr)
        return 2
    label = a.label or a.folder.name
    work = Path(tempfile.mkdtemp(prefix="ptdm-bench-"))
    try:
        base = None
        if not a.skip_baseline:
            print(f"harness: {len(files)} files in {a.folder}; baseline loop ...", file=sys.stderr, flush=True)
            base = baseline(files, work / "baseline.parquet")
            print(f"harness: baseline {base['wall']:.1f}s", file=sys.stderr, flush=True)
        print("harness: pipeline (ptdm run, local[2]) ...", file=sys.stderr, flush=True)
        pipe = pipeline(a.folder, work / "lakehouse", [x for o in a.overrides for x in ("--set", o)], work / "events")
        prof = job_profile(work / "events")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = len(files)
    rows = []
    if base:
        rows.append(("baseline loop (1 process)", base["wall"], f"{base['peak_rss_mb']:.0f} MB (process)"))
    rows.append(("  Spark start-up (to the first stage)", pipe["startup"], ""))
    for stage in ("ingest", "process", "dedupe", "curate"):
        if stage in pipe["stages"]:
            rows.append((f"  ptdm {stage}", pipe["stages"][stage], ""))
    rows.append(("ptdm run (local[2], start-up included)", pipe["wall"],
                 f"JVM {pipe['jvm_peak_mb']:.0f} MB; Python worker max {pipe['worker_peak_mb']:.0f} MB "
                 f"(all workers {pipe['workers_sum_peak_mb']:.0f} MB)"))
    decoded = f"{base['ok']} decoded by the baseline, " if base else ""
    lines = [
        f"### {label}: {n} images ({decoded}{pipe['images']} in images)",
        "",
        "| run | seconds | images/s | peak memory |",
        "|---|---:|---:|---|",
        *[f"| {name} | {sec:.1f} | {n / sec:.0f} | {mem} |" if sec else f"| {name} | – | – | {mem} |"
          for name, sec, mem in rows],
        "",
    ]
    if base:
        lines += [f"ratio pipeline/baseline (throughput): **{base['wall'] / pipe['wall']:.2f}**", ""]
    lines += [
        f"Spark jobs: {prof['jobs']}, running {prof['busy_s']:.1f} s of the {pipe['wall']:.1f} s "
        f"(the rest: JVM and catalog start-up, planning, Delta commits, Python); longest: "
        + ", ".join(f"{what} {sec:.1f} s" for sec, what in prof["longest"]),
        "",
        "Stage profile (`ptdm run`'s progress lines):",
        "",
        "```",
        *pipe["laps"],
        "```",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with a.markdown.open("a") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
