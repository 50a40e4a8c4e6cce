"""Write the report's files (report.html + one PNG per plot) to a folder on any Hadoop file
system, and a local copy of the page when that folder is remote."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ptdm_spark.analysis.report import html
from ptdm_spark.io import sources

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ptdm_spark.analysis.analyze import Analysis


def _put(spark: "SparkSession", uri: str, data: bytes) -> None:
    fs, path = sources.hadoop_fs(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(data))
    finally:
        out.close()


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file:")


def write(spark: "SparkSession", a: "Analysis", out_dir: str) -> tuple[str, str | None]:
    """Returns (the report's URI, the local copy's path when ``out_dir`` is remote)."""
    figs = html.figures(a)
    page = html.render(a, figs).encode()
    out_dir = out_dir.rstrip("/")
    if is_local(out_dir):
        out_dir = str(Path(out_dir.removeprefix("file:")).expanduser().resolve())
    fs, path = sources.hadoop_fs(spark, out_dir)
    fs.mkdirs(path)
    for name, data in figs.items():
        _put(spark, f"{out_dir}/{name}.png", data)
    _put(spark, f"{out_dir}/report.html", page)
    local = None
    if not is_local(out_dir):
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ptdm-spark" / "reports"
        target = cache / a.dataset / f"curated-v{a.version}"
        target.mkdir(parents=True, exist_ok=True)
        (target / "report.html").write_bytes(page)
        local = str(target / "report.html")
    return f"{out_dir}/report.html", local
