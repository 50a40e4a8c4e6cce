"""The one place a SparkSession is built.

The same function serves three callers:

* ``ptdm`` in local mode: Python starts the JVM, so master, driver memory and the Delta jars
  (``.jars/`` of the checkout, fetched once by ``scripts/setup.sh``, or the user cache filled by
  ``ptdm setup``: :mod:`ptdm_spark.jars`) are set here;
* ``spark-submit jobs/<stage>.py``: the JVM is already up with the user's ``--master``,
  ``--jars`` or ``--packages``; nothing the user passed is overridden, and the Delta jars from
  ``.jars/`` are only used when the user brought none;
* the tests' session-scoped fixture.

Every session gets the Delta SQL extension and catalog, and a persistent catalog (embedded Derby
metastore + warehouse under ``lakehouse.catalog_dir``) so that a table registered by one process
is visible to the next one and to ``spark-sql`` started with :func:`spark_properties`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ptdm_spark import jars
from ptdm_spark.config import LakehouseConfig, SparkConfig, conf_dir
from ptdm_spark.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def jars_dir() -> Path:
    """The folder the Delta jars come from (see :mod:`ptdm_spark.jars` for the lookup order)."""
    return jars.find()[0]


def delta_jars() -> list[str]:
    return jars.find()[1]


def spark_properties(spark_cfg: SparkConfig, lakehouse: LakehouseConfig, *, under_submit: bool = False) -> dict[str, str]:
    """Every Spark property ptdm sets, as a flat dict (also printed by ``ptdm spark-conf``).

    Args:
        spark_cfg: the ``spark`` config section.
        lakehouse: the ``lakehouse`` section (the catalog lives under it).
        under_submit: True when spark-submit started the JVM: then master, driver memory and jars
            are the submitter's business and are left out.
    """
    catalog = lakehouse.catalog_path
    props: dict[str, str] = {
        "spark.app.name": spark_cfg.app_name,
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": (catalog / "warehouse").as_uri(),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={catalog / 'metastore_db'};create=true",
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
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
        java_opts = [f"-Dderby.system.home={catalog}"]
        log_conf = conf_dir() / "log4j2.properties"
        if log_conf.is_file():
            java_opts.append(f"-Dlog4j2.configurationFile={log_conf.as_uri()}")
        props["spark.driver.extraJavaOptions"] = " ".join(java_opts)
        jars = delta_jars()
        if jars:
            props["spark.jars"] = ",".join(jars)
    props.update({k: str(v) for k, v in spark_cfg.conf.items()})
    if not under_submit and "spark.jars" in spark_cfg.conf and "delta-spark" not in props["spark.jars"]:
        props["spark.jars"] = ",".join(filter(None, [props["spark.jars"], *delta_jars()]))  # extra jars add to Delta's
    return props


# SQL functions every ptdm session (and scripts/spark-sql.sh) defines, for analysts.
SQL_FUNCTIONS = (
    "CREATE OR REPLACE TEMPORARY FUNCTION hamming(a BIGINT, b BIGINT) RETURNS INT "
    "COMMENT 'Hamming distance of two 64-bit hashes (images.phash, images.dhash): the bits that differ' "
    "RETURN CAST(bit_count(a ^ b) AS INT)",
)


def get_session(spark_cfg: SparkConfig, lakehouse: LakehouseConfig) -> "SparkSession":
    """Return the process's SparkSession, building it on first use.

    Raises:
        UsageError: the Delta jars are neither in ``.jars/`` nor passed to spark-submit.
    """
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active

    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    props = spark_properties(spark_cfg, lakehouse, under_submit=under_submit)
    if not under_submit and "spark.jars" not in props and "spark.jars.packages" not in spark_cfg.conf:
        raise UsageError(jars.missing_hint())
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
    for key, value in props.items():
        builder = builder.config(key, value)
    spark = builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel(spark_cfg.log_level.upper())
    for statement in SQL_FUNCTIONS:
        spark.sql(statement)
    return spark
