"""The analyst commands' and the endpoint's misuse paths, which stop before any JVM starts: a
lakehouse that cannot be, a missing one (nothing created), the server's arguments."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from ptdm_spark.config import LakehouseConfig
from ptdm_spark.errors import UsageError
from ptdm_spark.session import check_lakehouse_location
from tests.conftest import run_cli

pytestmark = pytest.mark.unit


def test_a_root_that_is_a_regular_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match=r"lakehouse.root: .*/file is not a folder"):
        check_lakehouse_location(LakehouseConfig(str(f), ""))
    with pytest.raises(UsageError, match=r"is under .*/file, which is not a folder"):
        check_lakehouse_location(LakehouseConfig(str(f / "lh"), ""))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_root_under_proc_or_sys():
    for root in ("/proc/ptdm/lh", "/sys/lh"):
        with pytest.raises(UsageError, match="kernel file system"):
            check_lakehouse_location(LakehouseConfig(root, ""))


def test_a_catalog_dir_that_is_a_file(tmp_path):
    f = tmp_path / "cat"
    f.write_text("x")
    with pytest.raises(UsageError, match="lakehouse.catalog_dir: .* is not a folder"):
        check_lakehouse_location(LakehouseConfig(str(tmp_path / "lh"), str(f)))


def test_a_read_only_mount(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True)
    # CI runs as root on these machines: a mount that fails is a broken test set-up, not a skip.
    assert mounted.returncode == 0, f"cannot mount a read-only tmpfs: {mounted.stderr.decode().strip()}"
    try:
        with pytest.raises(UsageError, match=r"cannot create anything in .*/ro \(Read-only file system\)"):
            check_lakehouse_location(LakehouseConfig(str(ro / "lh"), ""))
        status = run_cli("ingest", str(tmp_path), "--dataset", "x", "--set", f"lakehouse.root={ro / 'lh'}")
        assert status.returncode == 2 and status.stderr.count("\n") == 1, status.stderr
        assert "Read-only file system" in status.stderr
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_a_new_root_passes_and_nothing_is_left(tmp_path):
    check_lakehouse_location(LakehouseConfig(str(tmp_path / "a" / "b"), ""))
    assert list(tmp_path.iterdir()) == []  # the probe folder is gone, nothing else made


def test_a_job_on_a_file_root_is_one_line_before_spark(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    src = tmp_path / "src"
    src.mkdir()
    t0 = time.monotonic()
    r = run_cli("ingest", str(src), "--dataset", "x", "--set", f"lakehouse.root={f}")
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [f"ptdm ingest: error: lakehouse.root: {f} is not a folder"]
    assert time.monotonic() - t0 < 15  # no JVM was started


def test_sql_on_a_missing_root_creates_nothing(tmp_path):
    root = tmp_path / "nowhere"
    for args in (("sql", "SELECT 1"), ("tables",), ("history", "d")):
        r = run_cli(*args, "--set", f"lakehouse.root={root}")
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.splitlines()) == 1 and "does not exist" in r.stderr, r.stderr
        assert r.stdout == ""
    assert not root.exists()


def test_server_misuse_is_one_line_exit_2(tmp_path):
    lh = ["--set", f"lakehouse.root={tmp_path}"]
    cases = [
        (("server",), "the following arguments are required"),
        (("server", "restart"), "invalid choice"),
        (("server", "start", "--set", f"lakehouse.root={tmp_path / 'none'}"), "does not exist"),
        (("server", "start", *lh, "--set", "sql.server.port=70000"), "sql.server.port: 70000 is not a TCP port"),
        (("server", "start", *lh, "--set", "sql.server.metastore_port=15002"), "must differ"),
        (("sql", "SELECT 1", *lh, "--remote", "http://x:1"), "expected sc://host:port or local"),
        (("sql", "SELECT 1", *lh, "--set", "sql.remote=x"), "sql.remote: 'x' is not"),
    ]
    for args, message in cases:
        r = run_cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.splitlines()) == 1 and message in r.stderr, (args, r.stderr)
    assert not (tmp_path / "_catalog").exists() and not (tmp_path / "none").exists()


def test_server_status_and_stop_when_not_running(tmp_path):
    r = run_cli("server", "status", "--set", f"lakehouse.root={tmp_path}")
    assert r.returncode == 3 and r.stdout.startswith("not running (state in "), r
    r = run_cli("server", "stop", "--set", f"lakehouse.root={tmp_path}")
    assert r.returncode == 0 and "nothing to stop" in r.stdout


def test_server_help_names_every_action():
    r = subprocess.run([sys.executable, "-m", "ptdm_spark.cli", "server", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for word in ("start|stop|status", "--set", "--conf", "sql.server", "<catalog>/server/"):
        assert word in r.stdout


def _hold(lock, seconds: float, orphan: bool) -> subprocess.Popen:
    """A process holding ``lock`` open for ``seconds``; with ``orphan`` its parent exits at once
    (as the JVM of a ptdm command that has just ended: reparented to pid 1, still shutting down)."""
    hold = f"import time; f = open({str(lock)!r}); time.sleep({seconds})"
    # A grandchild: this process's own children count as its own JVM, never as another holder.
    wait = "" if orphan else ".wait()"
    code = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {hold!r}]){wait}"
    if orphan:
        subprocess.run([sys.executable, "-c", code], check=True)
        return None
    return subprocess.Popen([sys.executable, "-c", code])


def test_the_exiting_jvm_of_the_last_command_is_waited_for(tmp_path):
    from ptdm_spark.session import catalog_holder

    lock = tmp_path / "metastore_db" / "dbex.lck"
    lock.parent.mkdir()
    lock.write_text("")
    _hold(lock, 2.0, orphan=True)
    time.sleep(0.5)
    start = time.monotonic()
    assert catalog_holder(tmp_path, wait_for_orphans=20) is None  # it let go: no CatalogBusy
    assert 0.5 < time.monotonic() - start < 10
    # A live command's JVM (its parent alive) is reported at once, and so is an orphan that stays.
    proc = _hold(lock, 30.0, orphan=False)
    try:
        time.sleep(0.5)
        start = time.monotonic()
        assert catalog_holder(tmp_path, wait_for_orphans=20).startswith("pid ")
        assert time.monotonic() - start < 2
    finally:
        proc.kill()
        subprocess.run(["pkill", "-f", re.escape(f"open({str(lock)!r})")], check=False)
