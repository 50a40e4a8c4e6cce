"""The per-run floor: what ``ptdm run`` costs on a small folder whatever its data, for this
checkout and, in the same invocation, for a baseline git revision (so the ratio is measured on
the same machine, minutes apart, not against a number from another day).

For each checkout:

* **cold**: ``ptdm run`` in a new process, JVM and catalog start-up included (what a user trying
  the tool on a folder waits): wall time, Spark jobs (from the event log), CPU seconds of the whole
  machine during the run (``/proc/stat``: the floor is CPU in the JVM, not waiting);
* **warm**: ``ptdm run`` again and again in one process on new datasets (what a notebook, the
  test suite or a long-lived service pays per run once the JVM is warm), then a rerun on the same
  input (nothing new: what ``watch``/``collect`` pay per batch).

    python -m benchmarks.floor [--images 20] [--warm 2] [--baseline REV] [--markdown FILE]

The baseline runs from a temporary ``git worktree`` of REV with this checkout's virtualenv and
Delta jars. Not a timed test: ``tests/spark/test_benchmark_harness.py`` keeps the harness from
rotting; this script prints numbers for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import job_profile

ROOT = Path(__file__).resolve().parent.parent

_WARM = r"""
import json, os, sys, time
from ptdm_spark.cli import main
folder, root, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sets = ["--set", f"lakehouse.root={root}", "--set", "spark.progress=false"]
out = []
for i, ds in enumerate([f"w{j}" for j in range(n + 1)] + [f"w{n}"]):
    t = time.monotonic()
    rc = main(["run", folder, "--dataset", ds, *sets])
    out.append({"dataset": ds, "rc": rc, "seconds": time.monotonic() - t})
print("FLOOR " + json.dumps(out), flush=True)
os._exit(0)
"""


def make_images(folder: Path, n: int) -> None:
    """``n`` distinct 256 px PNG photos-like images in two labelled folders."""
    sys.path.insert(0, str(ROOT))
    from tests.imagefiles import encode, photo

    for i in range(n):
        d = folder / ("a" if i % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:04d}.png").write_bytes(encode(photo(i, 256, 256)))


def _cpu_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores)."""
    with open("/proc/stat") as fh:
        f = [int(x) for x in fh.readline().split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f) - idle) / os.sysconf("SC_CLK_TCK")


def measure(code: Path, folder: Path, work: Path, warm: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "PTDM_JARS_DIR": str(ROOT / ".jars")}
    python = str(ROOT / ".venv" / "bin" / "python")
    events = work / "events"
    events.mkdir(parents=True)
    cmd = [python, "-m", "ptdm_spark.cli", "run", str(folder), "--dataset", "cold",
           "--set", f"lakehouse.root={work / 'cold'}", "--set", "spark.progress=false",
           "--set", "spark.conf.spark.eventLog.enabled=true", "--set", "spark.conf.spark.eventLog.compress=false",
           "--set", f"spark.conf.spark.eventLog.dir={events.as_uri()}"]
    cpu, t = _cpu_busy(), time.monotonic()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    cold, cold_cpu = time.monotonic() - t, _cpu_busy() - cpu
    if proc.returncode != 0:
        raise SystemExit(f"floor: cold ptdm run failed in {code}:\n{proc.stderr[-3000:]}")
    stages = {ln.split("]")[0][1:]: float(ln.rsplit(" ", 1)[1].rstrip("s"))
              for ln in proc.stderr.splitlines() if ln.startswith("[") and "] succeeded in " in ln}
    prof = job_profile(events)
    proc = subprocess.run([python, "-c", _WARM, str(folder), str(work / "warm"), str(warm)], cwd=code, env=env,
                          capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FLOOR ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"floor: warm runs failed in {code}:\n{proc.stderr[-3000:]}")
    runs = json.loads(line[len("FLOOR "):])
    if any(r["rc"] != 0 for r in runs):
        raise SystemExit(f"floor: a warm run failed in {code}: {runs}")
    return {"cold": cold, "cold_cpu": cold_cpu, "jobs": prof["jobs"], "stages": stages,
            "first_in_process": runs[0]["seconds"], "warm": [r["seconds"] for r in runs[1:-1]],
            "rerun": runs[-1]["seconds"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20, help="images in the folder (default 20)")
    p.add_argument("--warm", type=int, default=2, help="warm runs on new datasets (default 2)")
    p.add_argument("--baseline", metavar="REV", help="a git revision to measure the same way, first")
    p.add_argument("--markdown", type=Path, help="append the table to this file")
    a = p.parse_args(argv)
    if a.images < 1 or a.warm < 1:
        print("floor: --images and --warm must be at least 1", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="ptdm-floor-"))
    results: list[tuple[str, dict]] = []
    try:
        folder = work / "in"
        make_images(folder, a.images)
        codes = [("this checkout", ROOT)]
        if a.baseline:
            tree = work / "baseline"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), a.baseline],
                           check=True, capture_output=True)
            codes.insert(0, (f"baseline {a.baseline}", tree))
        for i, (name, code) in enumerate(codes):
            print(f"floor: {name}: cold run, then {a.warm} warm run(s) and a rerun in one process ...", file=sys.stderr)
            results.append((name, measure(code, folder, work / f"m{i}", a.warm)))
    finally:
        if a.baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(work / "baseline")],
                           capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"### `ptdm run` of {a.images} images (256 px PNG), cold and warm", "",
             "| code | cold s | Spark jobs | machine CPU s (cold) | ingest / process / dedupe / curate s (cold) "
             "| first in-process s | warm s (median) | rerun, nothing new s |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    for name, r in results:
        st = " / ".join(f"{r['stages'].get(s, 0):.1f}" for s in ("ingest", "process", "dedupe", "curate"))
        lines.append(f"| {name} | {r['cold']:.1f} | {r['jobs']} | {r['cold_cpu']:.0f} | {st} | "
                     f"{r['first_in_process']:.1f} | {statistics.median(r['warm']):.1f} | {r['rerun']:.1f} |")
    if len(results) == 2:
        (_, b), (_, n) = results
        lines += ["", f"ratio baseline / this checkout: cold {b['cold'] / n['cold']:.2f}, jobs {b['jobs'] / n['jobs']:.2f}, "
                      f"warm {statistics.median(b['warm']) / statistics.median(n['warm']):.2f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        with a.markdown.open("a") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
