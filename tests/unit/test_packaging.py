"""What an installed ptdm needs besides its code, and the flags Spark users type (no JVM).

The wheel itself is built, installed and run in tests/spark/test_wheel.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ptdm_spark import jars
from ptdm_spark.cli import build_parser, spark_overrides
from ptdm_spark.config import conf_dir, load_config
from ptdm_spark.errors import ConfigError
from ptdm_spark.session import spark_properties
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.unit


def test_default_config_is_package_data_and_found_from_any_folder(tmp_path, monkeypatch):
    import ptdm_spark

    package = Path(ptdm_spark.__file__).resolve().parent
    assert conf_dir() == package / "conf"
    monkeypatch.chdir(tmp_path)  # no conf/ here
    cfg = load_config("local", ["fashion-mnist"])  # a packaged dataset config, by name
    assert cfg.ingest.label_names[0] == "T-shirt/top"
    assert cfg.curate.source_splits == "keep"
    with pytest.raises(ConfigError, match=r"--conf mnist: no such file, nor a packaged dataset config \(packaged: fashion"):
        load_config("local", ["mnist"])
    # The checkout's conf/ is the same folder (one source of truth), so its paths keep working.
    assert (ROOT / "conf").resolve() == package / "conf"
    assert load_config("local", [ROOT / "conf/datasets/fashion-mnist.yaml"]).hash == load_config("local", ["fashion-mnist"]).hash


def test_pyproject_declares_ranges_and_constraints_pin_them():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "Apache-2.0" and (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert meta["scripts"]["ptdm"] == "ptdm_spark.cli:main"
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    for req in meta["dependencies"] + meta["optional-dependencies"]["dev"]:
        name = re.sub(r"[-_.]+", "-", re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0]).lower()
        assert "==" not in req, f"{req}: the package declares a range; the exact version goes to constraints.txt"
        assert name in pins, f"{name} is not pinned in constraints.txt"
    assert not any(k.startswith("ptdm") for k in pins)


def test_master_and_spark_conf_flags_reach_the_session_conf(tmp_path):
    args = build_parser().parse_args([
        "run", "src", "--dataset", "d", "--master", "local[3]", "--conf", "spark.executor.memory=3g",
        "--conf", "spark.hadoop.fs.s3a.endpoint=http://h:9000/?a=b", "--conf", "fashion-mnist",
        "--set", f"lakehouse.root={tmp_path}"])
    files, overrides = spark_overrides(args)
    assert files == ["fashion-mnist"]
    cfg = load_config("local", files, overrides)
    props = spark_properties(cfg.spark, cfg.lakehouse)
    assert props["spark.master"] == "local[3]"
    assert props["spark.executor.memory"] == "3g"
    assert props["spark.hadoop.fs.s3a.endpoint"] == "http://h:9000/?a=b"  # verbatim, '=' and all
    assert cfg.ingest.label_names[0] == "T-shirt/top"  # the YAML --conf still applies


def test_extra_spark_jars_add_to_the_delta_jars(tmp_path):
    cfg = load_config(overrides=[f"lakehouse.root={tmp_path}", "spark.conf.spark.jars=/opt/extra.jar"])
    found = jars.find()[1]
    assert found, "the checkout's .jars should hold the Delta jars (scripts/setup.sh)"
    assert spark_properties(cfg.spark, cfg.lakehouse)["spark.jars"].split(",") == ["/opt/extra.jar", *found]


@pytest.mark.parametrize(
    "args,line",
    [
        (["run", ".", "--dataset", "x", "--executor-memory", "2g"],
         "ptdm: error: --executor-memory is a spark-submit option: use --conf spark.executor.memory=VALUE"),
        (["sql", "select 1", "--packages=io.delta:x:1"],
         "ptdm: error: --packages is a spark-submit option: use --conf spark.jars.packages=VALUE"),
        (["run", ".", "--dataset", "x", "--driver-memory", "8g"],
         "ptdm: error: --driver-memory is a spark-submit option: use --set spark.driver_memory=VALUE (e.g. 8g)"),
        (["ingest", ".", "--dataset", "x", "--conf", "spark.ui.enabled"],
         "ptdm ingest: error: --conf spark.ui.enabled: expected spark.KEY=VALUE (a Spark property) or a YAML file"),
    ],
)
def test_spark_submit_habits_get_a_one_line_hint(args, line, tmp_path):
    proc = run_cli(*args, "--set", f"lakehouse.root={tmp_path / 'lh'}", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == line
    assert not (tmp_path / "lh").exists()


def test_jar_lookup_order_and_the_hint_when_missing(tmp_path, monkeypatch):
    coord = jars.coordinate()
    assert str(coord) == "io.delta:delta-spark_4.2_2.13:4.4.0"  # constraints.txt's pyspark and delta-spark
    assert coord.version_range == "[4.4.0,4.4.0]"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert jars.cache_dir() == tmp_path / "cache/ptdm-spark/jars/spark4.2-delta4.4.0"
    monkeypatch.setenv("PTDM_JARS_DIR", str(tmp_path / "empty"))
    assert jars.find()[1] == []
    hint = jars.missing_hint()
    assert "run `ptdm setup`" in hint and "--conf spark.jars.packages=io.delta:delta-spark_4.2_2.13:4.4.0" in hint
    proc = run_cli("run", str(ROOT / "tests"), "--dataset", "x", "--set", f"lakehouse.root={tmp_path / 'lh'}",
                   env={"PTDM_JARS_DIR": str(tmp_path / "empty")}, timeout=60)
    assert proc.returncode == 2  # before any JVM starts or anything is written
    assert proc.stderr.strip() == f"ptdm run: error: {hint}"
    assert not (tmp_path / "lh").exists()
    # A folder with the Delta jar (here: the checkout's) is taken as it is.
    monkeypatch.setenv("PTDM_JARS_DIR", str(ROOT / ".jars"))
    assert any(Path(j).name == "delta-spark_4.2_2.13-4.4.0.jar" for j in jars.find()[1])


def test_the_driver_class_archive_option(tmp_path, monkeypatch):
    """The driver JVM maps the class archive when set-up built one beside the jars, writes it when
    ``class_archive.build`` runs the process, and is started without either otherwise."""
    from ptdm_spark import class_archive

    monkeypatch.delenv(class_archive.DUMP_ENV, raising=False)
    assert class_archive.java_options(tmp_path) == []
    (tmp_path / class_archive.ARCHIVE).write_bytes(b"x")
    assert class_archive.java_options(tmp_path) == [f"-XX:SharedArchiveFile={tmp_path / class_archive.ARCHIVE}"]
    assert not class_archive.up_to_date(tmp_path)  # no stamp: set-up builds it again
    monkeypatch.setenv(class_archive.DUMP_ENV, str(tmp_path / "new.jsa"))
    assert class_archive.java_options(tmp_path) == [f"-XX:ArchiveClassesAtExit={tmp_path / 'new.jsa'}"]
    monkeypatch.delenv(class_archive.DUMP_ENV)
    monkeypatch.setenv("PTDM_JARS_DIR", str(tmp_path))
    cfg = load_config(overrides=[f"lakehouse.root={tmp_path / 'lh'}"])
    opts = spark_properties(cfg.spark, cfg.lakehouse)["spark.driver.extraJavaOptions"].split()
    assert f"-XX:SharedArchiveFile={tmp_path / class_archive.ARCHIVE}" in opts and "-XX:+UseParallelGC" in opts


def test_jvm_options_with_a_space_are_quoted(tmp_path):
    """Spark splits the driver's JVM options on whitespace unless quoted: a catalog folder under
    ``My Data`` stays one option."""
    import shlex

    cfg = load_config(overrides=[f"lakehouse.root={tmp_path / 'My Data' / 'lh'}"])
    opts = shlex.split(spark_properties(cfg.spark, cfg.lakehouse)["spark.driver.extraJavaOptions"])
    assert f"-Dderby.system.home={tmp_path / 'My Data' / 'lh' / '_catalog'}" in opts
