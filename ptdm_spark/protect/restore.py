"""``ptdm restore``: a dataset back from a backup, or one table rolled back with Delta's RESTORE.

From a backup: the manifest is read (the newest of the dataset at the location, or ``--backup
ID``) and checked against its own digest; then every file it lists is checked, present with its
size and SHA-256, BEFORE anything is written. A damaged or incomplete backup stops there with
one line (exit 1) and nothing changed, not even a ``runs`` row. Then the tables are copied into
a staging folder of the target dataset (hashed again as they are copied), moved into place (a
rename per table; tables of an existing dataset are replaced only with ``--overwrite``), and
registered in the catalog as ``<target>.<table>``. The restore's own ``runs`` row is written last,
into the restored ``runs`` table.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError
from ptdm_spark.io import delta
from ptdm_spark.protect.backup import FORMAT, BackupError, digest, manifest_rel, object_rel
from ptdm_spark.protect.store import Store, first_line, qualify

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def backups(spark: "SparkSession", location: str, dataset: str) -> list[str]:
    """The backup ids of ``dataset`` at ``location``, oldest first."""
    src = Store(spark, location)
    return sorted(n[:-5] for n, d in src.children(f"manifests/{dataset}") if not d and n.endswith(".json"))


def load_manifest(spark: "SparkSession", location: str, dataset: str, backup_id: str | None) -> dict:
    src = Store(spark, location)
    if not src.exists():
        raise UsageError(f"--from {location}: no such backup location")
    ids = backups(spark, location, dataset)
    if not ids:
        raise UsageError(f"--from {location}: no backup of dataset {dataset!r} there")
    if backup_id is None:
        backup_id = ids[-1]
    elif backup_id not in ids:
        raise UsageError(f"--backup {backup_id}: not a backup of {dataset!r} at {location} "
                         f"(there: {', '.join(ids[-5:])})")
    rel = manifest_rel(dataset, backup_id)
    try:
        manifest = json.loads(src.read(rel))
        ok = manifest.get("format") == FORMAT and manifest.get("digest") == digest(manifest)
    except (ValueError, UnicodeDecodeError, AttributeError):
        ok = False
    if not ok:
        older = [i for i in ids if i < backup_id]
        raise BackupError(f"backup {backup_id} at {location} is damaged: its manifest {src.uri(rel)} does not "
                          "match its digest; nothing was changed"
                          + (f" (an older backup: --backup {older[-1]})" if older else ""))
    return manifest


def verify(spark: "SparkSession", location: str, manifest: dict) -> tuple[int, int]:
    """Check every file of the backup (present, size, SHA-256); returns (files, bytes).

    Raises:
        BackupError: naming how many files are missing or damaged, and the first of them.
    """
    from ptdm_spark.pipeline.job import log

    src = Store(spark, location)
    missing, damaged = [], []
    files = nbytes = 0
    entries = [(t, f) for t, spec in sorted(manifest["tables"].items()) for f in spec["files"]]
    checked: dict[str, bool] = {}
    for t, f in entries:
        obj, name = object_rel(f["sha256"]), f"{t}/{f['path']}"
        if obj not in checked:
            size = src.size(obj)
            if size is None:
                checked[obj] = False
                missing.append(name)
            else:
                try:
                    checked[obj] = size == f["size"] and src.sha256(obj) == f["sha256"]
                except Exception:  # noqa: BLE001 - py4j: an unreadable block counts as damaged
                    checked[obj] = False
                if not checked[obj]:
                    damaged.append(name)
            nbytes += f["size"]
        elif not checked[obj]:
            (missing if src.size(obj) is None else damaged).append(name)
        files += 1
        if files % 200 == 0:
            log(f"[restore] verified {files}/{len(entries)} file(s)")
    if missing or damaged:
        first = (damaged or missing)[0]
        raise BackupError(f"backup {manifest['backup_id']} at {location} is damaged: {len(damaged)} file(s) fail "
                          f"their SHA-256, {len(missing)} missing (first: {first}); nothing was changed")
    return files, nbytes


def from_backup(spark: "SparkSession", cfg: Config, dataset: str, location: str, target: str | None,
                backup_id: str | None, overwrite: bool, argv: list[str]) -> dict:
    """Restore ``dataset`` (as ``target``) from the backup at ``location``; returns the counts."""
    from ptdm_spark.pipeline.job import log
    from ptdm_spark.runs import Run

    location = qualify(location)
    target = delta.check_dataset_name(target or dataset)
    manifest = load_manifest(spark, location, dataset, backup_id)
    root = f"{cfg.lakehouse.root_uri.rstrip('/')}/{target}"
    dest = Store(spark, root)
    tables = sorted(manifest["tables"])
    # Only tables with files count: a registration whose folder is gone (the dataset deleted, its
    # tables not dropped) is simply pointed at the restored table again.
    present = [t for t in tables if dest.exists(t)]
    if present and not overwrite:
        raise UsageError(f"dataset {target!r} already has table(s) {', '.join(present)}: add --overwrite "
                         f"to replace them with backup {manifest['backup_id']}, or restore --as NEW_NAME")
    run = Run(job="restore", dataset=target, config=cfg, args=argv)
    start = time.monotonic()
    pins = ", ".join(f"{t}@{manifest['tables'][t]['version']}" for t in tables)
    log(f"[restore] run {run.run_id}: backup {manifest['backup_id']} of {dataset} ({pins}) -> {target}")
    files, nbytes = verify(spark, location, manifest)
    log(f"[restore] backup verified: {files} file(s), {nbytes / 1e6:,.1f} MB, every SHA-256 matches "
        f"({time.monotonic() - start:.1f}s)")

    # Copy into staging; nothing of the target is touched until every file is there.
    src = Store(spark, location)
    staging = f"_restore/{run.run_id}"
    done = done_bytes = 0
    try:
        for t in tables:
            for f in manifest["tables"][t]["files"]:
                sha, size = src.copy_to(object_rel(f["sha256"]), dest, f"{staging}/{t}/{f['path']}")
                if sha != f["sha256"] or size != f["size"]:
                    raise BackupError(f"{t}/{f['path']} changed while it was restored; nothing was changed")
                done, done_bytes = done + 1, done_bytes + size
                if done % 200 == 0:
                    log(f"[restore] copied {done}/{files} file(s), {done_bytes / 1e6:,.1f} MB")
            dest.mkdirs(f"{staging}/{t}")  # a table may have no data file (an empty table)
    except BackupError:
        dest.delete(staging)
        raise
    except Exception as exc:  # noqa: BLE001 - py4j: I/O error on either side
        dest.delete(staging)
        raise BackupError(f"restore failed while copying ({first_line(exc)}); nothing was changed") from None
    log(f"[restore] copied {done} file(s), {done_bytes / 1e6:,.1f} MB ({time.monotonic() - start:.1f}s)")

    # Into place: a rename per table (the replaced tables go aside, then away).
    aside = f"_restore/{run.run_id}-replaced"
    for t in tables:
        if dest.exists(t):
            dest.rename(t, f"{aside}/{t}")
        dest.rename(f"{staging}/{t}", t)
    dest.delete(f"_restore/{run.run_id}")
    dest.delete(aside)
    if not dest.children("_restore"):
        dest.delete("_restore")
    _forget_cached_logs(spark)
    registered = _register(spark, manifest, target, root)
    versions = {t: int(manifest["tables"][t]["version"]) for t in tables}
    run.input_versions.update(versions)
    run.output_versions.update(versions)
    run.counts.update({"tables": len(tables), "files": done, "bytes": done_bytes,
                       "seconds": int(round(time.monotonic() - start))})
    with delta.commit_metadata(spark, run.commit_meta):
        run.record(spark, "succeeded")
    log(f"[restore] {target}: {len(tables)} table(s) restored, {registered} registered in the catalog "
        f"({time.monotonic() - start:.1f}s)")
    return {"backup_id": manifest["backup_id"], "tables": len(tables), "files": done, "bytes": done_bytes,
            "versions": versions}


def _forget_cached_logs(spark: "SparkSession") -> None:
    """Delta caches each table's log per path: a table replaced under the same path must be read anew."""
    try:
        spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()
    except Exception:  # noqa: BLE001 - an internal API; a stale cache only costs a re-list
        pass


def _register(spark: "SparkSession", manifest: dict, target: str, root: str) -> int:
    """Register the restored tables as ``<target>.<table>`` at their new place (replacing any
    registration that points elsewhere); returns how many."""
    n = 0
    for t, spec in sorted(manifest["tables"].items()):
        if not spec.get("catalog") and t != "runs":
            continue
        name = f"`{target}`.`{t}`"
        if spark.catalog.databaseExists(target) and spark.catalog.tableExists(f"{target}.{t}"):
            spark.sql(f"DROP TABLE {name}")  # an external table: its files stay
        delta.register(spark, target, t, f"{root}/{t}")
        spark.catalog.refreshTable(f"{target}.{t}")
        n += 1
    return n


def table_version(spark: "SparkSession", cfg: Config, dataset: str, table: str, version: int,
                  argv: list[str]) -> dict:
    """Roll ``table`` back to ``version`` with Delta's ``RESTORE TABLE ... TO VERSION AS OF``
    (a new commit; the versions in between stay readable); returns the commit's metrics."""
    from delta.tables import DeltaTable

    from ptdm_spark.pipeline.job import job, log

    path = cfg.lakehouse.table_path(dataset, table)
    if table.startswith("_") or not delta.is_delta_table(spark, path):
        raise UsageError(f"--table {table}: no such table in dataset {dataset!r} (at {path})")
    if table == "runs":
        raise UsageError("--table runs: the runs ledger is never rolled back")
    versions = sorted(r[0] for r in DeltaTable.forPath(spark, path).history().select("version").collect())
    if version not in versions:
        raise UsageError(f"--version {version}: {dataset}.{table} has versions {versions[0]}..{versions[-1]} "
                         f"in its history (ptdm history {dataset} {table})")
    if version == versions[-1]:
        raise UsageError(f"--version {version}: {dataset}.{table} is already at version {version}")
    with job(spark, cfg, "restore", dataset, argv) as run:
        log(f"[restore] {dataset}.{table}: version {versions[-1]} -> the state of version {version}")
        try:
            spark.sql(f"RESTORE TABLE delta.`{path}` TO VERSION AS OF {int(version)}")
        except Exception as exc:  # noqa: BLE001 - files of that version vacuumed, ...
            raise BackupError(f"cannot restore {dataset}.{table} to version {version}: {first_line(exc)}") from None
        new, metrics = delta.commit_of(spark, path, run.run_id)
        run.input_versions[table] = versions[-1]
        run.output_versions[table] = new
        run.counts.update({"restored_to": int(version), **{k: v for k, v in metrics.items() if k.startswith("num")}})
        log(f"[restore] {dataset}.{table}: version {new} has the rows of version {version}")
    return {"version": new, "metrics": metrics}
