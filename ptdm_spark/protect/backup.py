"""``ptdm backup``: a consistent, checksummed, incremental copy of a dataset's Delta tables.

Layout of a backup location (a local folder or an ``hdfs://`` URI; many backups, of one or
several datasets, share it)::

    URI/objects/ab/ab12...      every file once, named by its SHA-256 (content-addressed)
    URI/manifests/<dataset>/<backup id>.json    one per backup; the backup id is the run id

A backup pins every table's version first (the newest ``_delta_log`` commit of each, before the
job writes its own ``runs`` row), then copies, per table, the log entries up to that version and
every data file under the table folder (all the files the retained versions reference), hashing
each file as it is read. A file whose SHA-256 is already an object of the location (same size)
is not copied again: the second backup copies only what is new. The manifest, written last (a
temporary name, then a rename), is the backup's commit point: it lists, per table, the pinned
version, its catalog name and location, and every file with its size and SHA-256, and carries
a digest of itself. A backup without its manifest (interrupted) is not a backup; its objects are
reused by the next one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.protect.store import FileInfo, Store, first_line, qualify

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

FORMAT = "ptdm-backup/1"
LOG = "_delta_log"
_VERSIONED = re.compile(r"^(\d{20})\.")
_COMPACTED = re.compile(r"^(\d{20})\.(\d{20})\.compacted\.json$")


class BackupError(Exception):
    """A backup that cannot be made or used (damaged, incomplete, unreadable): exit 1."""


@dataclass
class TableSnapshot:
    """One table pinned at ``version``: the files a copy of it at that version needs."""

    name: str
    version: int
    files: list[FileInfo] = field(default_factory=list)


def object_rel(sha: str) -> str:
    return f"objects/{sha[:2]}/{sha}"


def manifest_rel(dataset: str, backup_id: str) -> str:
    return f"manifests/{dataset}/{backup_id}.json"


def _log_version(name: str) -> int | None:
    """The version a ``_delta_log`` entry belongs to (None: not versioned, e.g. _last_checkpoint)."""
    m = _COMPACTED.match(name)
    if m:
        return int(m.group(2))
    m = _VERSIONED.match(name)
    return int(m.group(1)) if m else None


def _hidden(rel: str) -> bool:
    """Hadoop's own side files (``.x.crc``) and writers' temporary files: never part of a table."""
    return rel.rsplit("/", 1)[-1].startswith(".")


def pin(spark: "SparkSession", cfg: Config, dataset: str) -> list[TableSnapshot]:
    """Pin every Delta table of the dataset (folders under ``<root>/<dataset>`` with a log) at
    its newest commit, and list the files a copy needs. All versions are read before any file
    is listed, so the backup is the dataset as it was at one moment (as far as the jobs' own
    commit order makes one)."""
    ds = Store(spark, f"{cfg.lakehouse.root_uri.rstrip('/')}/{dataset}")
    tables = [n for n, is_dir in ds.children() if is_dir and not n.startswith(("_", ".")) and ds.exists(f"{n}/{LOG}")]
    pinned: list[TableSnapshot] = []
    for name in tables:
        versions = [v for v in (_log_version(n) for n, d in ds.children(f"{name}/{LOG}")
                                if not d and n.endswith(".json") and ".checkpoint." not in n
                                and not _COMPACTED.match(n)) if v is not None]
        if versions:
            pinned.append(TableSnapshot(name, max(versions)))
    for t in pinned:
        for f in ds.files(t.name):
            if _hidden(f.rel):
                continue
            if f.rel.startswith(f"{LOG}/"):
                if not _log_entry_wanted(ds, t, f):
                    continue
            t.files.append(f)
    return pinned


def _log_entry_wanted(ds: Store, t: TableSnapshot, f: FileInfo) -> bool:
    name = f.rel.rsplit("/", 1)[-1]
    v = _log_version(name)
    if v is not None:
        return v <= t.version
    if name == "_last_checkpoint":  # a hint only; kept when it does not point past the pinned version
        try:
            return int(json.loads(ds.read(f"{t.name}/{f.rel}"))["version"]) <= t.version
        except (ValueError, KeyError, TypeError):
            return False
    return True  # _sidecars/ of v2 checkpoints and anything else the log keeps


def run(spark: "SparkSession", cfg: Config, dataset: str, to: str, argv: list[str]) -> dict:
    """Back up ``dataset`` into ``to``; returns the manifest written."""
    from ptdm_spark.pipeline.job import job, log

    target = qualify(to)
    root = f"{cfg.lakehouse.root_uri.rstrip('/')}/{dataset}"
    if f"{target}/".startswith(f"{qualify(root)}/"):
        raise UsageError(f"--to {to}: the backup cannot live inside the dataset's own folder {root}")
    try:
        dest = Store(spark, target)
        dest.mkdirs("objects")
    except Exception as exc:  # noqa: BLE001 - py4j carries the JVM's IOException
        raise UsageError(f"--to {to}: cannot write there: {first_line(exc)}") from None
    pinned = pin(spark, cfg, dataset)
    if not pinned:
        raise UsageError(f"unknown dataset {dataset!r}: no Delta table under {root}")
    registered = _registered(spark, dataset)
    src = Store(spark, root)
    with job(spark, cfg, "backup", dataset, argv) as r:
        total_files = sum(len(t.files) for t in pinned)
        total_bytes = sum(f.size for t in pinned for f in t.files)
        log(f"[backup] {dataset}: {len(pinned)} table(s), {total_files} file(s), {_mb(total_bytes)} "
            f"-> {target} ({', '.join(f'{t.name}@{t.version}' for t in pinned)})")
        copied = copied_bytes = done = 0
        tables = {}
        for t in pinned:
            entries = []
            t_copied = 0
            for f in t.files:
                rel = f"{t.name}/{f.rel}"
                try:
                    sha = src.sha256(rel)
                    obj = object_rel(sha)
                    if dest.size(obj) != f.size:
                        got, size = src.copy_to(rel, dest, obj)
                        if got != sha or size != f.size:
                            dest.delete(obj, False)
                            raise BackupError(f"{rel} changed while it was copied (size {f.size} -> {size}); "
                                              "run the backup again")
                        copied, copied_bytes, t_copied = copied + 1, copied_bytes + size, t_copied + 1
                except BackupError:
                    raise
                except Exception as exc:  # noqa: BLE001 - py4j: vanished file, I/O error
                    raise BackupError(f"cannot back up {src.uri(rel)}: {first_line(exc)}") from None
                entries.append({"path": f.rel, "size": f.size, "sha256": sha})
                done += 1
                if done % 200 == 0:
                    log(f"[backup] {done}/{total_files} file(s) checked, {copied} copied ({_mb(copied_bytes)})")
            tables[t.name] = {
                "version": t.version,
                "location": f"{root}/{t.name}",
                "catalog": f"{dataset}.{t.name}" if t.name in registered else None,
                "files": entries,
            }
            r.input_versions[t.name] = t.version
            log(f"[backup] {t.name}@{t.version}: {len(entries)} file(s), {t_copied} copied")
        manifest = {
            "format": FORMAT,
            "backup_id": r.run_id,
            "dataset": dataset,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "source": root,
            "tables": tables,
            "totals": {"tables": len(tables), "files": total_files, "bytes": total_bytes,
                       "copied_files": copied, "copied_bytes": copied_bytes},
        }
        manifest["digest"] = digest(manifest)
        dest.write(manifest_rel(dataset, r.run_id), json.dumps(manifest, indent=1, sort_keys=True).encode())
        r.counts.update({"tables": len(tables), "files": total_files, "bytes": total_bytes,
                         "files_copied": copied, "bytes_copied": copied_bytes})
        log(f"[backup] {copied} of {total_files} file(s) copied ({_mb(copied_bytes)} of {_mb(total_bytes)}); "
            f"manifest {dest.uri(manifest_rel(dataset, r.run_id))}")
    return manifest


def digest(manifest: dict) -> str:
    """SHA-256 over the manifest's canonical JSON without its ``digest`` field."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _registered(spark: "SparkSession", dataset: str) -> set[str]:
    if not spark.catalog.databaseExists(dataset):
        return set()
    return {t.name for t in spark.catalog.listTables(dataset)}


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"
