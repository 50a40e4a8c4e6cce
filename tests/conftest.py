"""One Spark session for the whole test run (local[2], UI off, few partitions), and helpers.

Library code never builds a session; tests get it from here or through ``ptdm`` (which finds the
active one). All in-process tests share one lakehouse root (and so one catalog), with one
dataset name per test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PTDM = [sys.executable, "-m", "ptdm_spark.cli"]


def overrides_for(lakehouse: Path) -> list[str]:
    sets = [
        f"lakehouse.root={lakehouse}",
        "spark.shuffle_partitions=2",
        "spark.progress=false",
        "spark.log_level=ERROR",
        "spark.conf.spark.ui.enabled=false",
        "spark.driver_memory=2g",
    ]
    if os.environ.get("PTDM_HDFS_HTTP_PORT"):  # scripts/hdfs.sh moved to other ports (tests/cluster)
        sets.append(f"landing.webhdfs_url=http://127.0.0.1:{os.environ['PTDM_HDFS_HTTP_PORT']}")
    return sets


@pytest.fixture(scope="session")
def lakehouse(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lakehouse")


@pytest.fixture(scope="session")
def overrides(lakehouse) -> list[str]:
    return overrides_for(lakehouse)


@pytest.fixture(scope="session")
def cfg(overrides):
    from ptdm_spark.config import load_config

    return load_config("local", (), overrides)


@pytest.fixture(scope="session")
def spark(cfg):
    from ptdm_spark.session import get_session

    session = get_session(cfg.spark, cfg.lakehouse)
    yield session
    session.stop()


@pytest.fixture
def ptdm(spark, overrides, capsys):
    """Run ``ptdm ARGS...`` in this process (sharing the test session); returns (status, stdout)."""
    from ptdm_spark.cli import main

    def run(*args: str) -> tuple[int, str]:
        argv = [args[0], *[a for o in overrides for a in ("--set", o)], *args[1:]]
        status = main(argv)
        out = capsys.readouterr()
        return status, out.out + out.err

    return run


@pytest.fixture(scope="session")
def ptdm_module(spark, overrides):
    """``ptdm ARGS...`` in this process (the test session), usable by module fixtures (no
    capsys); returns (status, stdout + stderr)."""
    import contextlib
    import io

    from ptdm_spark.cli import main

    def run(*args: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            status = main([args[0], *[a for o in overrides for a in ("--set", o)], *args[1:]])
        return status, out.getvalue()

    return run


def run_cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``ptdm`` as a new process (its own JVM, when it needs one)."""
    e = {**os.environ, **(env or {})}
    return subprocess.run([*PTDM, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=e)
