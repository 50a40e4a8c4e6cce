"""The ``runs`` ledger: one row per job run, and the commit stamp that ties Delta versions to it."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ptdm_spark import __version__
from ptdm_spark.config import Config
from ptdm_spark.io import delta
from ptdm_spark.session import pid_alive

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def code_version() -> str:
    """``git describe`` of the checkout the code runs from, else the package version."""
    root = Path(__file__).resolve().parent.parent
    if (root / ".git").exists():
        try:
            out = subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                capture_output=True, text=True, timeout=5, check=True,
            )
            return f"{__version__}+{out.stdout.strip()}"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def new_run_id(job: str) -> str:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{job}-{uuid.uuid4().hex[:8]}"


@dataclass
class Run:
    """One job run: its id, what it read and wrote (table versions), and its counts."""

    job: str
    dataset: str
    config: Config
    args: list[str] = field(default_factory=list)
    run_id: str = ""
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    input_versions: dict[str, int] = field(default_factory=dict)
    output_versions: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_id = self.run_id or new_run_id(self.job)

    @property
    def commit_meta(self) -> dict[str, str]:
        return {"run_id": self.run_id, "job": self.job, "config_hash": self.config.hash}

    def table_path(self, table: str) -> str:
        return self.config.lakehouse.table_path(self.dataset, table)

    def note_input(self, spark: "SparkSession", table: str) -> None:
        v = delta.table_version(spark, self.table_path(table))
        if v is not None:
            self.input_versions[table] = v

    def begin(self, spark: "SparkSession") -> None:
        """Record this run as ``running`` before it touches a table, so that a run killed half-way
        still has its row. Runs of this host left ``running`` by a process that no longer exists
        (killed, machine restarted) are marked ``abandoned`` first (once per process and dataset:
        the jobs of one ``ptdm run`` look once)."""
        path = self.table_path("runs")
        if path not in _LOOKED_FOR_STALE and delta.is_delta_table(spark, path):
            dead = [r for r, host, pid in self._running(spark, path)
                    if host == _host() and pid is not None and not pid_alive(pid)]
            if dead:
                from delta.tables import DeltaTable
                from pyspark.sql import functions as F

                with delta.commit_metadata(spark, self.commit_meta):
                    DeltaTable.forPath(spark, path).update(F.col("run_id").isin(dead), {"status": F.lit("abandoned")})
        _LOOKED_FOR_STALE.add(path)
        # A new run id is in no row yet: a blind append, not a keyed MERGE.
        self._write(spark, "running", None)
        delta.register(spark, self.dataset, "runs", path)

    def native_path(self, path: str) -> str | None:
        """The local path of a table of this run's lakehouse when deltalake may read and write it
        (a local, unencrypted lakehouse: deltalake cannot open encrypted Parquet files), else
        None: Spark does."""
        return delta.local_table_path(path) if self.config.security.encryption.mode == "none" else None

    def _running(self, spark: "SparkSession", path: str) -> list[tuple[str, str, int | None]]:
        """(run_id, host, pid) of the rows of ``runs`` still ``running``. A local, unencrypted
        lakehouse is read with deltalake (the log and one column filter in Rust, no Spark job:
        this runs at the start of every command, on a cold JVM); otherwise, or when deltalake
        cannot read the table, with Spark."""
        local = self.native_path(path)
        if local is not None:
            try:
                import pyarrow.compute as pc
                from deltalake import DeltaTable

                rows = (DeltaTable(local).to_pyarrow_dataset()
                        .to_table(columns=["run_id", "host", "pid"], filter=pc.field("status") == "running")
                        .to_pylist())
                return [(r["run_id"], r["host"], r["pid"]) for r in rows]
            except Exception:  # a table feature deltalake does not read: Spark reads everything
                pass
        return [(r.run_id, r.host, r.pid) for r in spark.read.format("delta").load(path)
                .filter("status = 'running'").select("run_id", "host", "pid").collect()]

    def record(self, spark: "SparkSession", status: str) -> None:
        """This run's final row in ``<dataset>/runs``, replacing its ``running`` row (every row of
        this run id) in one commit."""
        self._write(spark, status, dt.datetime.now(dt.timezone.utc), replace=True)
        delta.register(spark, self.dataset, "runs", self.table_path("runs"))

    def _write(self, spark: "SparkSession", status: str, finished_at: dt.datetime | None,
               replace: bool = False) -> None:
        """Append this run's row, or replace its rows with it. Two commits per command (begin and
        end, four per stage of ``ptdm run``): a local, unencrypted lakehouse writes them with
        deltalake (no Spark job, ~20 ms against 0.5–2 s, and 5–7 s for a cold JVM's first Delta
        write); hdfs://, an encrypted lakehouse, or a table deltalake refuses, with Spark."""
        from ptdm_spark import schemas

        path = self.table_path("runs")
        where = f"run_id = '{self.run_id}'" if replace else None
        if self.native_path(path) is not None and delta.write_rows_natively(
                path, [self._values(status, finished_at)], schemas.RUNS, self.commit_meta, where):
            return
        with delta.commit_metadata(spark, self.commit_meta):
            if replace:
                delta.replace_slice(spark, self._row(spark, status, finished_at), path, where)
            else:
                delta.append(spark, self._row(spark, status, finished_at), path)

    def _row(self, spark: "SparkSession", status: str, finished_at: dt.datetime | None):
        """This run's row as a one-row Spark frame."""
        from ptdm_spark import schemas

        return spark.createDataFrame([self._values(status, finished_at)], schema=schemas.RUNS)

    def _values(self, status: str, finished_at: dt.datetime | None) -> dict:
        """This run's row (the columns of ``schemas.RUNS``)."""
        return dict(
            run_id=self.run_id,
            job=self.job,
            dataset=self.dataset,
            started_at=self.started_at,
            finished_at=finished_at,
            status=status,
            user=_user(),
            host=_host(),
            pid=os.getpid(),
            config_hash=self.config.hash,
            config=json.dumps(self.config.to_dict(), sort_keys=True),
            code_version=code_version(),
            args=" ".join(self.args),
            input_versions={k: int(v) for k, v in self.input_versions.items()},
            output_versions={k: int(v) for k, v in self.output_versions.items()},
            counts={k: int(v) for k, v in self.counts.items()},
        )


_LOOKED_FOR_STALE: set[str] = set()


def _host() -> str:
    import socket

    return socket.gethostname()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER", "unknown")

