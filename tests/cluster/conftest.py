"""Real daemons for the cluster tests: HDFS (NameNode + 2 DataNodes) started by scripts/hdfs.sh."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT

# scripts/hdfs.sh's ports, which the same variables move (a second HDFS beside another one)
HDFS = f"hdfs://127.0.0.1:{os.environ.get('PTDM_HDFS_PORT', '9000')}"
WEBHDFS = f"http://127.0.0.1:{os.environ.get('PTDM_HDFS_HTTP_PORT', '9870')}"


@pytest.fixture(scope="session")
def hdfs():
    """A running HDFS; started here (and stopped at the end) unless one is already up."""
    running = subprocess.run([str(ROOT / "scripts" / "hdfs.sh"), "status"], capture_output=True, text=True)
    started = running.returncode != 0
    if started:
        proc = subprocess.run([str(ROOT / "scripts" / "hdfs.sh"), "start"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    yield HDFS
    if started:
        subprocess.run([str(ROOT / "scripts" / "hdfs.sh"), "stop"], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def spark_cluster():
    """A running Spark standalone master + 2 one-core workers (scripts/spark-cluster.sh)."""
    script = str(ROOT / "scripts" / "spark-cluster.sh")
    started = subprocess.run([script, "status"], capture_output=True, text=True).returncode != 0
    if started:
        proc = subprocess.run([script, "start"], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    yield "spark://127.0.0.1:7077"
    if started:
        subprocess.run([script, "stop"], capture_output=True, text=True, timeout=120)
