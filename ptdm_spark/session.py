"""The one place a SparkSession is built.

The same function serves three callers:

* ``ptdm`` in local mode: Python starts the JVM, so master, driver memory and the Delta jars
  (``.jars/`` of the checkout, fetched once by ``scripts/setup.sh``, or the user cache filled by
  ``ptdm setup``: :mod:`ptdm_spark.jars`) are set here;
* ``spark-submit jobs/<stage>.py``: the JVM is already up with the user's ``--master``,
  ``--jars`` or ``--packages``; nothing the user passed is overridden, and the Delta jars from
  ``.jars/`` are only used when the user brought none;
* the tests' session-scoped fixture.

Every session gets the Delta SQL extension and catalog, and a persistent catalog (a Derby
metastore + warehouse under ``lakehouse.catalog_dir``) so that a table registered by one process
is visible to the next one and to ``spark-sql`` started with :func:`spark_properties`.

Embedded Derby admits one process at a time. While the SQL endpoint runs (``ptdm server start``,
:mod:`ptdm_spark.analysis.server`), its Hive metastore service owns the Derby database and every
session (jobs, ``ptdm sql``, ``spark-sql``) reaches the catalog through it instead; the endpoint's
state file under ``<catalog>/server/`` says where. Without it, a second process fails at once
with one line that names the process holding the catalog (Derby itself would retry for 85 s and
then print thousands of lines of stack traces).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ptdm_spark import class_archive, jars
from ptdm_spark.config import EncryptionConfig, LakehouseConfig, SparkConfig, conf_dir, file_uri
from ptdm_spark.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class CatalogBusy(UsageError):
    """Another process has the embedded catalog open and no SQL endpoint shares it."""


DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def jars_dir() -> Path:
    """The folder the Delta jars come from (see :mod:`ptdm_spark.jars` for the lookup order)."""
    return jars.find()[0]


def delta_jars() -> list[str]:
    return jars.find()[1]


def spark_properties(spark_cfg: SparkConfig, lakehouse: LakehouseConfig, *, under_submit: bool = False,
                     encryption: EncryptionConfig | None = None) -> dict[str, str]:
    """Every Spark property ptdm sets, as a flat dict (also printed by ``ptdm spark-conf``).

    Args:
        spark_cfg: the ``spark`` config section.
        lakehouse: the ``lakehouse`` section (the catalog lives under it).
        under_submit: True when spark-submit started the JVM: then master, driver memory and jars
            are the submitter's business and are left out.
        encryption: ``security.encryption``, for a JVM that ptdm does not configure afterwards
            (``spark-sql``, the SQL endpoint): its settings as ``spark.hadoop.*`` properties.
            :func:`get_session` sets them on the session instead (they follow each command's config).
    """
    catalog = lakehouse.catalog_path
    metastore = endpoint_metastore(catalog)
    props: dict[str, str] = {
        "spark.app.name": spark_cfg.app_name,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": file_uri(catalog / "warehouse"),
        **metastore_properties(catalog, metastore),
        # Hive's session makes a downloaded-resources folder per session, by default
        # <java.io.tmpdir>/<session uuid>_resources, and never removes it: one empty folder left in
        # /tmp per Spark session. One folder under the catalog instead (ADD JAR downloads go there).
        "spark.hadoop.hive.downloaded.resources.dir": str(catalog / "resources"),
        "spark.sql.shuffle.partitions": str(spark_cfg.shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Spark's console bars only with spark.progress=spark; ptdm prints its own lines otherwise.
        "spark.ui.showConsoleProgress": str(spark_cfg.progress == "spark").lower(),
        # Delta: stamp commits, keep the default retention; image blobs make large rows, so no
        # automatic stats on the binary columns.
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta rebuilds table state with 50 partitions by default: far too many for a log of a
        # few dozen commits on a small machine.
        "spark.databricks.delta.snapshotPartitions": "4",
        # Delay scheduling for HDFS block locality hung a 2-task stage forever here (local mode
        # over HDFS: one task done, the other never launched, both cores idle). Locality buys
        # little for image blobs; waiting for it is not worth a hang. Override in spark.conf.
        "spark.locality.wait": "0",
    }
    if not under_submit:
        props["spark.master"] = spark_cfg.master
        props["spark.driver.memory"] = spark_cfg.driver_memory
        # The throughput collector: on a 2-core machine G1's concurrent marking threads took ~4
        # CPU-s of a 20 s stage; with ParallelGC a Fashion-MNIST `ptdm run --analyze` ran in
        # 99-101 s against 104-105 s, every stage a little shorter (benchmarks/README, fourth
        # round). A spark.conf of spark.driver.extraJavaOptions replaces all of these.
        # The class archive (class_archive.py): Spark's, Hive's and Delta's classes mapped from one
        # file built at set-up instead of loaded from the jars: a session ready ~4.5 s sooner.
        java_opts = [f"-Dderby.system.home={catalog}", "-XX:+UseParallelGC", *class_archive.java_options(jars_dir())]
        log_conf = conf_dir() / "log4j2.properties"
        if log_conf.is_file():
            java_opts.append(f"-Dlog4j2.configurationFile={log_conf.as_uri()}")
        # Spark splits these on whitespace unless quoted: a catalog or jars folder under "My Data".
        props["spark.driver.extraJavaOptions"] = " ".join(f'"{o}"' if any(c.isspace() for c in o) else o
                                                          for o in java_opts)
        jars = delta_jars()  # the folder's ptdm-crypto.jar (encryption classes, 5 KB) comes along
        if jars:
            props["spark.jars"] = ",".join(jars)
    if encryption is not None:
        from ptdm_spark.protect import encryption as crypto

        props.update(crypto.spark_properties(encryption))
    props.update({k: str(v) for k, v in spark_cfg.conf.items()})
    if not under_submit and "spark.jars" in spark_cfg.conf and "delta-spark" not in props["spark.jars"]:
        props["spark.jars"] = ",".join(filter(None, [props["spark.jars"], *delta_jars()]))  # extra jars add to Delta's
    return props


def metastore_properties(catalog: Path, metastore: str | None) -> dict[str, str]:
    """How a session reaches the catalog: the endpoint's metastore service (``thrift://...``) when
    one runs, else the embedded Derby database under ``catalog``."""
    if metastore:
        return {"spark.hadoop.hive.metastore.uris": metastore}
    return {
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={catalog / 'metastore_db'};create=true",
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
    }


def server_state_dir(catalog: Path) -> Path:
    """Where the SQL endpoint keeps its state file, pid files and logs."""
    return catalog / "server"


def read_server_state(catalog: Path) -> dict | None:
    """The SQL endpoint's state (ports, pids, start time), or None when it is not running."""
    path = server_state_dir(catalog) / "server.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pids = [state.get("connect_pid"), state.get("metastore_pid")]
    if not all(isinstance(p, int) and pid_alive(p) for p in pids):
        return None
    return state


def endpoint_metastore(catalog: Path) -> str | None:
    """``thrift://host:port`` of the running endpoint's metastore service for this catalog, if any."""
    state = read_server_state(catalog)
    if state is None or not port_open(state["host"], state["metastore_port"]):
        return None
    return f"thrift://{state['host']}:{state['metastore_port']}"


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists on this host (also used by the runs ledger)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def catalog_holder(catalog: Path, wait_for_orphans: float = 30.0) -> str | None:
    """Who holds the embedded Derby catalog open, as "pid N (command, since HH:MM:SS)", or None.

    Derby keeps ``metastore_db/dbex.lck`` open (and locked) for as long as a JVM has the database
    booted; the file itself survives an unclean exit, so the open descriptor decides, not the file.
    A holder whose parent is gone (ppid 1: the JVM of a ``ptdm`` command that has just exited,
    still shutting down) is waited for, up to ``wait_for_orphans`` seconds: ``ptdm run ... &&
    ptdm sql ...`` must not fail on the first command's exiting JVM.
    """
    deadline = time.monotonic() + wait_for_orphans
    while True:
        pid = catalog_holder_pid(catalog)
        if pid is None:
            return None
        ppid = parent_pid(pid)  # 0: it has just gone
        if ppid not in (0, 1) or time.monotonic() > deadline:
            return describe_process(pid)
        time.sleep(0.2)


def catalog_holder_pid(catalog: Path) -> int | None:
    """The id of another process that has the Derby catalog's lock file open, or None."""
    lock = catalog / "metastore_db" / "dbex.lck"
    if not lock.exists():
        return None
    target = str(lock.resolve())
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        # This process's own JVM (a session stopped and built again) is not another holder.
        if not entry.name.isdigit() or me in (int(entry.name), parent_pid(int(entry.name))):
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == target:
                    return int(entry.name)
            except OSError:
                continue
    return None


def parent_pid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def describe_process(pid: int) -> str:
    """"pid N (the ptdm command behind it, since HH:MM:SS)" for a JVM that pyspark started: the
    command is its Python parent's when that is a ptdm process."""
    def cmdline(p: int) -> list[str]:
        try:
            return [a for a in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
        except OSError:
            return []

    args = cmdline(pid)
    ppid = parent_pid(pid)
    pargs = cmdline(ppid) if ppid > 1 else []
    shown = pid
    for candidate, cand_args in ((ppid, pargs), (pid, args)):
        if any(a.endswith("ptdm") or "ptdm_spark" in a for a in cand_args[:3]):
            shown, args = candidate, cand_args
            for i, a in enumerate(args):  # from the sub-command on
                if a.endswith(("ptdm", "ptdm_spark.cli")):
                    args = ["ptdm", *args[i + 1:]]
                    break
                if a.endswith(".py"):  # spark-submit jobs/<stage>.py
                    args = [Path(a).name, *args[i + 1:]]
                    break
            break
    else:
        args = [Path(args[0]).name, *args[1:]][:4] if args else ["?"]
    started = process_start(shown)
    since = time.strftime(", since %H:%M:%S", time.localtime(started)) if started else ""
    text = " ".join(" ".join(args).split())  # one line, whatever the arguments hold
    return f"pid {shown} ({text[:160]}{since})"


def process_start(pid: int) -> float | None:
    """When a process started (epoch seconds), from /proc: its start in clock ticks after boot."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def check_lakehouse_location(lakehouse: LakehouseConfig) -> None:
    """Stop with one line, before anything is created, when the lakehouse or its catalog cannot
    live where the config says: a regular file, a read-only mount, ``/proc``...

    The nearest existing folder of each path gets a probe folder made and removed again.

    Raises:
        UsageError: the path is not a folder, or nothing can be created there.
    """
    paths = [("lakehouse.catalog_dir" if lakehouse.catalog_dir else "lakehouse.root", lakehouse.catalog_path)]
    if lakehouse.is_local:
        paths.insert(0, ("lakehouse.root", Path(lakehouse.root.removeprefix("file:")).expanduser().resolve()))
    for key, path in paths:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            where = "is" if existing == path else f"is under {existing}, which is"
            raise UsageError(f"{key}: {path} {where} not a folder")
        if existing.parts[1:2] in (("proc",), ("sys",)):
            raise UsageError(f"{key}: {path} is on a kernel file system ({existing}), not a place for data")
        try:
            tempfile.TemporaryDirectory(dir=existing, prefix=".ptdm-probe-").cleanup()
        except OSError as exc:
            raise UsageError(f"{key}: cannot create anything in {existing} ({exc.strerror or exc})") from None


# SQL functions every ptdm session (and scripts/spark-sql.sh) defines, for analysts.
SQL_FUNCTIONS = (
    "CREATE OR REPLACE TEMPORARY FUNCTION hamming(a BIGINT, b BIGINT) RETURNS INT "
    "COMMENT 'Hamming distance of two 64-bit hashes (images.phash, images.dhash): the bits that differ' "
    "RETURN CAST(bit_count(a ^ b) AS INT)",
)


def get_session(spark_cfg: SparkConfig, lakehouse: LakehouseConfig,
                encryption: EncryptionConfig | None = None) -> "SparkSession":
    """Return the process's SparkSession, building it on first use.

    ``encryption`` (``security.encryption``): its key file is checked first, before anything
    else, and the session (also one that already runs) encrypts and decrypts as it says; None
    leaves the session's encryption settings as they are.

    Raises:
        UsageError: the Delta jars are neither in ``.jars/`` nor passed to spark-submit; the key
            file is missing or malformed, or ``ptdm-crypto.jar`` was not built.
    """
    from pyspark.sql import SparkSession

    from ptdm_spark.protect import encryption as crypto

    if encryption is not None:
        crypto.check(encryption)
        if encryption.enabled and jars.crypto_jar() is None and "PYSPARK_GATEWAY_PORT" not in os.environ:
            raise UsageError(f"security.encryption: {jars.CRYPTO_JAR} not found beside the Delta jars in "
                             f"{jars_dir()}: run scripts/setup.sh (a checkout) or ptdm setup (needs javac)")
    active = SparkSession.getActiveSession()
    if active is not None:
        if encryption is not None:
            crypto.apply(active, encryption)
            if encryption.enabled and any(active.sparkContext.getConf().get(k, "false") != v
                                          for k, v in crypto.IO_ENCRYPTION.items()):
                print("ptdm: note: this Spark session was started without spark.io.encryption.enabled: its shuffle "
                      "and spill files are not encrypted (start a new process, or pass the setting to spark-submit)",
                      file=sys.stderr)
        return active

    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    props = spark_properties(spark_cfg, lakehouse, under_submit=under_submit)
    if encryption is not None and encryption.enabled:
        for key, value in crypto.IO_ENCRYPTION.items():  # shuffle and spill files too (see there)
            props.setdefault(key, value)
    if not under_submit and "spark.jars" not in props and "spark.jars.packages" not in spark_cfg.conf:
        raise UsageError(jars.missing_hint())
    check_lakehouse_location(lakehouse)
    if "spark.hadoop.hive.metastore.uris" not in props:
        holder = catalog_holder(lakehouse.catalog_path)
        if holder:
            raise CatalogBusy(f"the catalog {lakehouse.catalog_path} is in use by {holder}; "
                              "start the SQL endpoint (ptdm server start) or retry when it ends")
    lakehouse.catalog_path.mkdir(parents=True, exist_ok=True)
    # Python workers run the interpreter that runs ptdm (its venv has numpy, OpenCV...).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not under_submit and spark_cfg.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local mode needs no network address

    builder = SparkSession.builder
    if under_submit:
        from pyspark import SparkConf

        existing = SparkConf()
        if not existing.contains("spark.master"):
            builder = builder.master(spark_cfg.master)
        user_jars = existing.get("spark.jars", "") + existing.get("spark.jars.packages", "")
        if "delta" not in user_jars and delta_jars():
            props["spark.jars"] = ",".join(filter(None, [existing.get("spark.jars", ""), *delta_jars()]))
        elif encryption is not None and encryption.enabled and jars.CRYPTO_JAR not in user_jars:
            jar = jars.crypto_jar()
            if jar is None:
                raise UsageError(f"security.encryption: pass {jars.CRYPTO_JAR} with --jars (built by scripts/setup.sh "
                                 "or ptdm setup)")
            props["spark.jars"] = ",".join(filter(None, [existing.get("spark.jars", ""), str(jar)]))
    for key, value in props.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel(spark_cfg.log_level.upper())
    for statement in SQL_FUNCTIONS:
        spark.sql(statement)
    if encryption is not None:
        crypto.apply(spark, encryption)
    return spark


@contextlib.contextmanager
def log_level(spark, logger: str, level: str):
    """``logger`` at ``level`` (log4j 2) while the block runs, then as it was."""
    jvm = spark.sparkContext._jvm
    conf = jvm.org.apache.logging.log4j.LogManager.getContext(False).getConfiguration()
    before = conf.getLoggerConfig(logger)
    kept = before.getLevel() if before.getName() == logger else None  # None: it had no config of its own
    configurator = jvm.org.apache.logging.log4j.core.config.Configurator
    configurator.setLevel(logger, jvm.org.apache.logging.log4j.Level.toLevel(level))
    try:
        yield
    finally:
        configurator.setLevel(logger, kept)
