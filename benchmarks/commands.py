"""One ``ptdm`` command as a user runs it (a new process), timed: what the benchmarks share."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PTDM = [sys.executable, "-m", "ptdm_spark.cli"]


def ptdm(*args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """(wall seconds, stdout + stderr) of ``ptdm ARGS``; any other exit status ends the benchmark
    with the command's last output."""
    t = time.monotonic()
    proc = subprocess.run([*PTDM, *args], capture_output=True, text=True, cwd=ROOT)
    wall = time.monotonic() - t
    out = proc.stdout + proc.stderr
    if proc.returncode not in ok:
        sys.exit(f"ptdm {args[0]} failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, out
