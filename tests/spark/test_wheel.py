"""The built wheel, installed into a fresh virtualenv outside the checkout, runs the pipeline.

What a new user does: build (or download) the wheel, ``pip install`` it, ``ptdm setup`` once for
the Delta jars, then ``ptdm run`` from any folder. The test does exactly that, from a temporary
folder, with nothing of the checkout on the path: the configuration must come from the package,
the jars from the user cache ``ptdm setup`` fills.

To stay fast it does not download and unpack the dependencies again (pyspark alone is ~450 MB):
the wheel is installed with ``--no-deps`` into the new venv, and a ``.pth`` file adds the test
venv's site-packages (the tested set, constraints.txt) behind it; ``pip check`` then verifies that
the wheel's declared dependency ranges accept that set. Time here: ~10 s build, ~12 s Maven
(warm ~/.m2), and one ``ptdm run`` (~1.5 min, JVM start-up and the stages' fixed cost).
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.imagefiles import encode, photo

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _run(cmd: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(bin folder of a fresh venv with the built wheel installed, environment to run it in)."""
    tmp = tmp_path_factory.mktemp("wheel")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "PTDM_CONF_DIR", "PTDM_JARS_DIR", "VIRTUAL_ENV", "PYSPARK_PYTHON")}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", tmp / "dist", ROOT], tmp, clean)
    (wheel,) = (tmp / "dist").glob("ptdm_spark-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for data in ("ptdm_spark/conf/base.yaml", "ptdm_spark/conf/local.yaml", "ptdm_spark/conf/cluster.yaml",
                 "ptdm_spark/conf/log4j2.properties", "ptdm_spark/conf/datasets/fashion-mnist.yaml"):
        assert data in names, f"{data} is not in the wheel"
    assert not any(n.startswith(("tests/", "conf/", "benchmarks/")) for n in names)

    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp, clean)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel], tmp, clean)
    (purelib,) = {Path(p) for p in venv.glob("lib/python3*/site-packages")}
    (purelib / "zz_tested_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _run([sys.executable, "-m", "pip", "--python", py, "check"], tmp, clean)  # ranges accept the tested set

    return venv / "bin", {**clean, "XDG_CACHE_HOME": str(tmp / "cache")}  # an empty user cache


def test_installed_wheel_runs_from_any_folder(installed, tmp_path):
    bindir, env = installed
    where = _run([bindir / "python", "-c", "import ptdm_spark; print(ptdm_spark.__file__)"], tmp_path, env).stdout
    assert where.startswith(str(bindir.parent)), where  # the installed copy, not the checkout's

    usage = _run([bindir / "ptdm", "--help"], tmp_path, env).stdout
    assert usage.startswith("usage: ptdm") and "setup" in usage

    # Without the jars: one line that says what to do, before any JVM starts.
    proc = subprocess.run([bindir / "ptdm", "run", ".", "--dataset", "w"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "run `ptdm setup`" in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr

    setup = _run([bindir / "ptdm", "setup"], tmp_path, env).stdout
    cache = Path(env["XDG_CACHE_HOME"]) / "ptdm-spark" / "jars" / "spark4.2-delta4.4.0"
    assert f"jars in {cache}" in setup and (cache / "delta-spark_4.2_2.13-4.4.0.jar").is_file()
    assert (cache / "ptdm-driver.jsa").is_file(), setup  # the driver's class archive, from a short run
    assert "nothing to do" in _run([bindir / "ptdm", "setup"], tmp_path, env).stdout

    images = tmp_path / "photos"
    for label, seeds in (("cats", (1, 2, 3)), ("dogs", (4, 5))):
        (images / label).mkdir(parents=True)
        for s in seeds:
            (images / label / f"{s}.png").write_bytes(encode(photo(s)))
    (images / "dogs" / "copy-of-4.png").write_bytes((images / "dogs" / "4.png").read_bytes())
    (images / "cats" / "broken.png").write_bytes(encode(photo(9))[:300])
    (images / "cats" / "grey.png").write_bytes(encode(np.full((40, 40, 3), 128, np.uint8)))

    run = _run([bindir / "ptdm", "run", "photos", "--dataset", "w", "--master", "local[2]",
                "--conf", "spark.ui.enabled=false", "--set", "spark.driver_memory=1g",
                "--set", "spark.shuffle_partitions=2"], tmp_path, env)
    assert "accounting adds up" in run.stdout, run.stdout
    assert "[process]" in run.stderr and "images/s" in run.stderr, run.stderr  # ptdm's progress lines

    from deltalake import DeltaTable

    lakehouse = tmp_path / "lakehouse"  # the default lakehouse.root, relative to the folder ptdm ran in

    def rows(table: str) -> list[dict]:
        return DeltaTable(str(lakehouse / "w" / table)).to_pyarrow_table().to_pylist()

    assert len(rows("raw_images")) == 8  # every file, the copy too
    assert {r["reason"] for r in rows("rejects")} == {"truncated"}
    assert len(rows("images")) == 6  # 5 photos + the grey square (the copy has the same image_id)
    curated = rows("curated")
    assert sorted(r["label"] for r in curated) == ["cats", "cats", "cats", "dogs", "dogs"]  # grey: near_constant
    assert (lakehouse / "_catalog" / "metastore_db").is_dir()
