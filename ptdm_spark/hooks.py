"""Pause points for fault tests: a job stops at a named point until the test lets it go.

Fault tests must kill a driver, a worker or a DataNode at a defined moment, not after a sleep
that a slow machine outruns. With ``PTDM_PAUSE_AT=<point>`` and ``PTDM_PAUSE_DIR=<folder>`` in
the environment (Spark's Python workers inherit the driver's), the code at that point creates
``<folder>/<point>.reached`` and waits until ``<folder>/<point>.go`` exists (at most
``PTDM_PAUSE_SECONDS``, default 600). Without these variables a pause point costs one
environment lookup. Points: ``process.task`` (a process task, before its first image); ``collect.batch`` (the
collect driver, between two committed batches).
"""

from __future__ import annotations

import os
import time


def pause_point(name: str) -> None:
    if os.environ.get("PTDM_PAUSE_AT") != name:
        return
    folder = os.environ.get("PTDM_PAUSE_DIR")
    if not folder:
        return
    reached, go = os.path.join(folder, f"{name}.reached"), os.path.join(folder, f"{name}.go")
    with open(reached, "a") as f:
        f.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + float(os.environ.get("PTDM_PAUSE_SECONDS", "600"))
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.1)
