"""The long-lived SQL endpoint: ``ptdm server start|stop|status``.

Two processes, both from the pyspark installation (nothing is downloaded):

* a **Hive metastore service** (``org.apache.hadoop.hive.metastore.HiveMetaStore``, Thrift, from
  pyspark's bundled Hive 2.3 jars) that opens the lakehouse's Derby catalog and so becomes its only
  owner. Every Spark session started while it runs -- jobs, ``ptdm sql`` in-process,
  ``spark-sql`` -- finds it through the state file and uses ``hive.metastore.uris`` instead of
  booting Derby itself (see :mod:`ptdm_spark.session`), so jobs and analysts no longer lock each
  other out;
* a **Spark Connect server** (``SparkConnectServer`` from pyspark's ``spark-connect`` jar) with
  ptdm's Spark properties (Delta, the catalog through the metastore service), which keeps a warm
  JVM for ``ptdm sql|tables|history`` and any Spark Connect client (``sc://host:port``).

State lives in ``<catalog>/server/``: ``server.json`` (pids, ports, start time), ``connect.log``,
``metastore.log`` and the properties file the Connect server was started with.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ptdm_spark.config import Config, file_uri
from ptdm_spark.errors import UsageError
from ptdm_spark.session import (
    catalog_holder,
    check_lakehouse_location,
    port_open,
    read_server_state,
    server_state_dir,
    spark_properties,
)

CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
METASTORE_CLASS = "org.apache.hadoop.hive.metastore.HiveMetaStore"


class ServerError(Exception):
    """The endpoint did not start or stop (not misuse: exit status 1)."""


@dataclass(frozen=True)
class Status:
    running: bool
    state: dict
    state_dir: Path

    def describe(self) -> str:
        if not self.running:
            return f"not running (state in {self.state_dir})"
        s = self.state
        started = dt.datetime.fromisoformat(s["started_at"])
        up = dt.datetime.now(dt.timezone.utc) - started
        return (f"running at {s['url']} (pid {s['connect_pid']}) since {started.astimezone():%Y-%m-%d %H:%M:%S %Z}, "
                f"up {_duration(up.total_seconds())}; catalog {s['catalog']} owned by the metastore service "
                f"{s['metastore_uri']} (pid {s['metastore_pid']}); logs in {self.state_dir}")


def status(cfg: Config) -> Status:
    catalog = cfg.lakehouse.catalog_path
    state = read_server_state(catalog)
    return Status(state is not None, state or {}, server_state_dir(catalog))


def start(cfg: Config, log=print) -> Status:
    """Start the metastore service and the Spark Connect server, wait until a query answers.

    Raises:
        UsageError: already running, a port is taken, the lakehouse does not exist or cannot
            hold the catalog, or a job holds the embedded catalog right now.
        ServerError: a process died or did not answer within ``sql.server.start_timeout``.
    """
    sc = cfg.sql.server
    lh = cfg.lakehouse
    current = status(cfg)
    if current.running:
        raise UsageError(f"already {current.describe()}")
    if lh.is_local and not Path(lh.root.removeprefix("file:")).expanduser().is_dir():
        raise UsageError(f"lakehouse.root: {lh.root} does not exist (run a job first, or --set lakehouse.root=PATH)")
    check_lakehouse_location(lh)
    for key, port in (("port", sc.port), ("metastore_port", sc.metastore_port)):
        if port_open(sc.host, port, timeout=0.3):
            raise UsageError(f"sql.server.{key}: {sc.host}:{port} is already in use by another program "
                             f"(choose another: --set sql.server.{key}=N)")
    holder = catalog_holder(lh.catalog_path)
    if holder:
        raise UsageError(f"the catalog {lh.catalog_path} is in use by {holder}; start the endpoint when it ends")

    catalog = lh.catalog_path
    state_dir = server_state_dir(catalog)
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "server.json").unlink(missing_ok=True)
    t0 = time.monotonic()
    metastore_uri = f"thrift://{sc.host}:{sc.metastore_port}"
    meta = _spawn(_metastore_command(cfg), state_dir / "metastore.log", cwd=state_dir)
    connect = None
    try:
        _wait_port(sc.host, sc.metastore_port, meta, state_dir / "metastore.log", sc.start_timeout, t0)
        log(f"metastore service up at {metastore_uri} after {time.monotonic() - t0:.1f}s")
        props_file = state_dir / "spark.properties"
        props = _connect_properties(cfg, metastore_uri)
        props_file.write_text("".join(f"{k} {v}\n" for k, v in props.items()))
        connect = _spawn(_connect_command(props_file), state_dir / "connect.log", cwd=state_dir)
        _wait_port(sc.host, sc.port, connect, state_dir / "connect.log", sc.start_timeout, t0)
        url = f"sc://{sc.host}:{sc.port}"
        state = {
            "url": url, "host": sc.host, "port": sc.port, "metastore_port": sc.metastore_port,
            "metastore_uri": metastore_uri, "connect_pid": connect.pid, "metastore_pid": meta.pid,
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "catalog": str(catalog), "lakehouse": lh.root_uri,
        }
        tmp = state_dir / "server.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(state_dir / "server.json")
        _warm_up(url, state_dir)
        log(f"SQL endpoint answers at {url} after {time.monotonic() - t0:.1f}s")
    except BaseException:
        for proc in (connect, meta):
            if proc is not None:
                _terminate(proc.pid, 10)
        (state_dir / "server.json").unlink(missing_ok=True)
        raise
    return status(cfg)


def stop(cfg: Config, timeout: float = 30, force: bool = False) -> Status | None:
    """Stop both processes (Connect first, then the metastore); returns the status they had, or
    None when nothing ran.

    Raises:
        UsageError: another process (a job) reaches the catalog through the metastore service right
            now, and ``force`` is not set: stopping would break it.
    """
    current = status(cfg)
    state_file = current.state_dir / "server.json"
    if not current.running:  # nothing, or what is left of an endpoint half of which died
        try:
            left = json.loads(state_file.read_text())
        except (OSError, ValueError):
            left = {}
        pids = [left.get(k) for k in ("connect_pid", "metastore_pid")]
        alive = [pid for pid in pids if isinstance(pid, int) and _is_ours(pid)]
        for pid in alive:
            _terminate(pid, timeout)
        state_file.unlink(missing_ok=True)
        return Status(False, left, current.state_dir) if alive else None
    if not force:
        from ptdm_spark.session import describe_process

        st = current.state
        users = metastore_clients(st["metastore_port"], exclude={st["connect_pid"], st["metastore_pid"]})
        if users:
            raise UsageError(f"the catalog is in use through the endpoint by {describe_process(users[0])}"
                             f"{f' and {len(users) - 1} more' if len(users) > 1 else ''}; "
                             "stop the endpoint when that ends (or --force)")
    for key in ("connect_pid", "metastore_pid"):
        pid = current.state[key]
        if _is_ours(pid):
            _terminate(pid, timeout)
    state_file.unlink(missing_ok=True)
    return current


def metastore_clients(port: int, exclude: set[int]) -> list[int]:
    """Pids with an established TCP connection to the metastore service's ``port`` (from
    ``/proc/net/tcp*`` and each process's socket descriptors), less ``exclude``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # remote address (hex ip:port), state 01 = ESTABLISHED, inode
            if len(f) > 9 and f[3] == "01" and int(f[2].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{f[9]}]")
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


# --- processes ---------------------------------------------------------------------------------


def _pyspark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise UsageError("java not found: install Java 17+ or set JAVA_HOME")
    return found


def _log4j() -> list[str]:
    conf = Path(__file__).resolve().parent.parent.parent / "conf" / "log4j2.properties"
    # Hive's log set-up asks for log4j's async context selector, whose LMAX disruptor jar pyspark
    # does not ship: the plain selector instead.
    opts = ["-Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.ClassLoaderContextSelector"]
    if conf.is_file():
        opts.append(f"-Dlog4j2.configurationFile={conf.as_uri()}")
    return opts


def _metastore_command(cfg: Config) -> list[str]:
    sc = cfg.sql.server
    catalog = cfg.lakehouse.catalog_path
    hive = {
        "javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={catalog / 'metastore_db'};create=true",
        "datanucleus.schema.autoCreateAll": "true",
        "hive.metastore.schema.verification": "false",
        "hive.metastore.warehouse.dir": file_uri(catalog / "warehouse"),
        "hive.downloaded.resources.dir": str(catalog / "resources"),
    }
    cmd = [_java(), f"-Xmx{sc.metastore_memory}", f"-Dderby.system.home={catalog}", *_log4j(),
           "-cp", str(_pyspark_home() / "jars" / "*"), METASTORE_CLASS, "-p", str(sc.metastore_port)]
    for key, value in hive.items():
        cmd += ["--hiveconf", f"{key}={value}"]
    return cmd


def _connect_properties(cfg: Config, metastore_uri: str) -> dict[str, str]:
    sc = cfg.sql.server
    from ptdm_spark.protect import encryption

    encryption.check(cfg.security.encryption)
    props = spark_properties(cfg.spark, cfg.lakehouse, encryption=cfg.security.encryption)
    for key in ("spark.hadoop.javax.jdo.option.ConnectionURL", "spark.hadoop.datanucleus.schema.autoCreateAll",
                "spark.hadoop.hive.metastore.schema.verification"):
        props.pop(key, None)
    props.update({
        "spark.app.name": "ptdm-sql-endpoint",
        "spark.hadoop.hive.metastore.uris": metastore_uri,
        "spark.driver.memory": sc.driver_memory,
        "spark.connect.grpc.binding.address": sc.host,
        "spark.connect.grpc.binding.port": str(sc.port),
        "spark.ui.showConsoleProgress": "false",
    })
    return props


def _connect_command(props_file: Path) -> list[str]:
    home = _pyspark_home()
    return [str(home / "bin" / "spark-submit"), "--class", CONNECT_CLASS, "--name", "ptdm-sql-endpoint",
            "--properties-file", str(props_file), "spark-internal"]


def _spawn(cmd: list[str], log_file: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "SPARK_HOME": str(_pyspark_home()), "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with open(log_file, "ab") as out:
        out.write(f"\n--- {dt.datetime.now():%Y-%m-%d %H:%M:%S} {' '.join(cmd)}\n".encode())
        out.flush()
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd, env=env, start_new_session=True)


def _wait_port(host: str, port: int, proc: subprocess.Popen, log_file: Path, timeout: float, t0: float) -> None:
    while not port_open(host, port, timeout=0.3):
        if proc.poll() is not None:
            raise ServerError(f"{Path(proc.args[0]).name} exited with status {proc.returncode} before it listened "
                              f"on {host}:{port}; see {log_file}")
        if time.monotonic() - t0 > timeout:
            raise ServerError(f"nothing listened on {host}:{port} after {timeout:.0f}s (sql.server.start_timeout); "
                              f"see {log_file}")
        time.sleep(0.25)


def _warm_up(url: str, state_dir: Path) -> None:
    """What the first analyst would otherwise wait for (40 s on a busy 2-core machine, against 4 s
    for the next query): the metastore client's start, and Delta's code paths -- a write, a
    snapshot, a count, a plan, a history -- on a scratch table of the endpoint's own."""
    from pyspark.sql import SparkSession

    table = file_uri(state_dir / "warm-up")
    scratch = f"delta.`{table}`"
    spark = SparkSession.builder.remote(url).getOrCreate()
    try:
        spark.sql("SHOW DATABASES").collect()
        spark.range(3).write.format("delta").mode("overwrite").save(table)
        spark.sql(f"EXPLAIN EXTENDED SELECT count(*) FROM {scratch}").collect()
        spark.sql(f"SELECT count(*) FROM {scratch}").collect()
        spark.sql(f"DESCRIBE HISTORY {scratch} LIMIT 1").collect()
    finally:
        spark.stop()


def _is_ours(pid: int) -> bool:
    """The pid still runs one of our two programs (not a recycled pid)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return CONNECT_CLASS.encode() in cmd or METASTORE_CLASS.encode() in cmd


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM the process group (spark-submit's JVM and its Python workers), then SIGKILL."""
    try:
        pgid = os.getpgid(pid)
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
