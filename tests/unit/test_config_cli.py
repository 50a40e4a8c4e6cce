"""Config loading and CLI misuse: one line, exit status 2, nothing started or written (no JVM)."""

from __future__ import annotations

import pytest

from ptdm_spark.config import load_config, parse_set
from ptdm_spark.errors import ConfigError
from tests.conftest import run_cli

pytestmark = pytest.mark.unit


def test_defaults_and_layering(tmp_path):
    base = load_config()
    assert base.lakehouse.root == "lakehouse"
    assert base.spark.master == "local[2]"
    extra = tmp_path / "x.yaml"
    extra.write_text("process:\n  normalize:\n    format: webp\n")
    cfg = load_config("local", [extra], ["process.normalize.quality=80", "spark.conf.spark.executor.memory=3g"])
    assert cfg.process.normalize.format == "webp"
    assert cfg.process.normalize.quality == 80
    assert cfg.spark.conf["spark.executor.memory"] == "3g"
    assert cfg.hash != base.hash
    assert load_config().hash == base.hash


def test_cluster_profile_points_at_hdfs():
    cfg = load_config("cluster")
    assert cfg.lakehouse.root.startswith("hdfs://")
    assert cfg.spark.master.startswith("spark://")


def test_frozen():
    cfg = load_config()
    with pytest.raises(AttributeError):
        cfg.lakehouse.root = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    "override,message",
    [
        ("lakehouse.rot=/x", "lakehouse.rot: unknown config key"),
        ("process.min_side=big", "process.min_side: expected an integer"),
        ("curate.splits.train=0.5", "curate.splits: ratios must add up to 1"),
        ("process.normalize.size_policy=stretch", "process.normalize.size_policy"),
        ("curate.exclude_flags=[ugly]", "curate.exclude_flags: unknown flag 'ugly'"),
        ("process.quality.blur_min=-5", "process.quality.blur_min: must be 0 or more"),
        ("process.quality.dark_max=2", "process.quality.dark_max: must be between 0 and 1"),
        ("ingest.extensions=[.jpg]", "ingest.extensions: '.jpg' is not an extension"),
        ("spark.progress=maybe", "spark.progress: .maybe. is not one of ptdm, spark, off"),
        ("process.privacy.method=smudge", "process.privacy.method: 'smudge' is not one of gaussian, pixelate, fill"),
        ("process.privacy.min_score=0", "process.privacy.min_score: must be above 0 and at most 1"),
        ("process.privacy.min_size=5", "process.privacy.min_size: must be at least 12 pixels"),
        ("process.privacy.max_side=16", "process.privacy.max_side: must be at least min_size"),
        ("process.privacy.strength=2", "process.privacy.strength: must be above 0 and at most 1"),
        ("process.privacy.margin=-0.1", "process.privacy.margin: must be between 0 and 1"),
        ("process.privacy.blur_faces=maybe", "process.privacy.blur_faces"),
        ("curate.exclude_flags=[has_face]", "curate.exclude_flags: unknown flag 'has_face'"),
    ],
)
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(overrides=[override])


def test_parse_set_keeps_dotted_spark_keys():
    assert parse_set("spark.conf.spark.sql.shuffle.partitions=4") == (["spark", "conf", "spark.sql.shuffle.partitions"], 4)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_set("lakehouse.root")


@pytest.mark.parametrize(
    "args,needle",
    [
        (["ingest", "/no/such/folder", "--dataset", "x"], "no such source: /no/such/folder"),
        (["run", "/no/such/folder", "--dataset", "x"], "no such source"),
        (["process", "--dataset", "x", "--set", "nope=1"], "nope: unknown config key"),
        (["ingest", ".", "--dataset", "Bad-Name"], "--dataset 'Bad-Name'"),
        (["ingest", ".", "--dataset", "x", "--labels", "/no/manifest.csv"], "no such manifest"),
        (["sql", "select 1", "--conf", "/no/such.yaml"], "no such file"),
        (["ingest", ".", "--dataset", "x", "--profile", "laptop"], "invalid choice"),
        (["process"], "--dataset"),
    ],
)
def test_misuse_is_one_line_exit_2(args, needle, tmp_path):
    proc = run_cli(*args, "--set", f"lakehouse.root={tmp_path / 'lh'}", timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) <= 2 and needle in proc.stderr, proc.stderr  # argparse prints usage + error
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "lh").exists()  # nothing written


def test_help_everywhere():
    for cmd in ([], ["ingest"], ["run"], ["sql"], ["tables"], ["history"], ["process"]):
        proc = run_cli(*cmd, "--help", timeout=60)
        assert proc.returncode == 0 and "usage: ptdm" in proc.stdout
    assert "--labels" in run_cli("ingest", "--help").stdout
    assert "process.privacy.blur_faces" in run_cli("process", "--help").stdout


def test_privacy_defaults_and_flag():
    cfg = load_config(overrides=["process.privacy.blur_faces=true", "curate.exclude_flags=[has_faces]"])
    assert cfg.process.privacy.blur_faces is True and cfg.curate.exclude_flags == ("has_faces",)
    base = load_config().process.privacy
    assert (base.blur_faces, base.method) == (False, "gaussian")
