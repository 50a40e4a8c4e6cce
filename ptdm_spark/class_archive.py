"""The driver JVM's class archive (Java's class-data sharing): the classes a ``ptdm`` command
loads — Spark, Hive, Delta's, the code Spark generates stubs for — parsed and verified once, at
set-up, and mapped from one file by every later driver JVM instead of being loaded from the jars
again. A session to its first Delta read: 15.2 → 10.7 s; a cold ``ptdm run`` of 20 images: 60.5 →
53.9 s (benchmarks/README, round 2, part 3).

Built by ``scripts/setup.sh`` and ``ptdm setup`` (:func:`build`): one small ``ptdm run --analyze``
in a child process whose JVM writes the archive when it exits (``-XX:ArchiveClassesAtExit``).
Every session ptdm starts afterwards passes ``-XX:SharedArchiveFile`` (:func:`java_options`).
The JVM checks the archive against its own build and its classpath and ignores, silently, one
that does not match (a new JDK, another pyspark): a stale archive costs its gain, nothing else. The
stamp beside it (JDK, pyspark, the jars) tells set-up when to build it again. ``spark-submit``
users choose their own JVM options; a ``spark.conf`` of ``spark.driver.extraJavaOptions``
replaces ptdm's, this one included.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ARCHIVE = "ptdm-driver.jsa"
STAMP = ".ptdm-driver.jsa.stamp"
DUMP_ENV = "PTDM_CLASS_ARCHIVE_DUMP"  # set by build(): the child's JVM writes the archive there


def java_options(folder: Path) -> list[str]:
    """The driver JVM's option for the archive in ``folder`` (the Delta jars' folder): use it
    when it exists; write it, when :func:`build` runs this process."""
    dump = os.environ.get(DUMP_ENV)
    if dump:
        return [f"-XX:ArchiveClassesAtExit={dump}"]
    archive = folder / ARCHIVE
    return [f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else []


def _digest(folder: Path) -> str:
    """What the archive depends on: the JVM Spark launches (``$JAVA_HOME/bin/java``, else ``java``)
    and its version, and the jars of the classpath as the JVM checks them (pyspark's, where they
    are, their sizes and times) and ptdm's Delta jars."""
    import pyspark

    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else (shutil.which("java") or "java")
    try:
        version = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60).stderr
    except (OSError, subprocess.SubprocessError):
        version = "?"
    h = hashlib.sha256(f"{java}\n{version}\n{md.version('pyspark')}".encode())
    for jar in [*sorted((Path(pyspark.__file__).parent / "jars").glob("*.jar")), *sorted(folder.glob("*.jar"))]:
        st = jar.stat()
        h.update(f"{jar}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def up_to_date(folder: Path) -> bool:
    stamp = folder / STAMP
    return (folder / ARCHIVE).is_file() and stamp.is_file() and stamp.read_text().strip() == _digest(folder)


def build(folder: Path, *, log=print) -> Path | None:
    """Write ``folder/ptdm-driver.jsa`` from one small ``ptdm run --analyze`` (about a minute
    and a half; ~250 MB). Returns its path, or None when it could not be built: ptdm works
    without it, only slower to start (said in one line)."""
    archive = folder / ARCHIVE
    if up_to_date(folder):
        log(f"setup: the driver's class archive is up to date in {folder}")
        return archive
    log(f"setup: building the driver's class archive ({ARCHIVE}: a short ptdm run whose JVM keeps the classes it "
        "loaded; about a minute and a half)")
    part = folder / (ARCHIVE + ".part")
    try:
        part.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="ptdm-class-archive-") as tmp:
            images = Path(tmp) / "images"
            _warm_up_images(images)
            env = {**os.environ, DUMP_ENV: str(part), "PTDM_JARS_DIR": str(folder)}
            proc = subprocess.run(
                [sys.executable, "-m", "ptdm_spark.cli", "run", str(images), "--dataset", "warmup", "--analyze",
                 "--set", f"lakehouse.root={Path(tmp) / 'lakehouse'}", "--set", "spark.progress=off",
                 "--set", "spark.log_level=ERROR"],
                env=env, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not part.is_file():
            raise RuntimeError((proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300])
        part.replace(archive)
    except Exception as exc:  # noqa: BLE001 - whatever went wrong, ptdm works without the archive
        log(f"setup: warning: the driver's class archive was not built (ptdm starts without it, a few seconds "
            f"slower): {type(exc).__name__}: {exc}")
        part.unlink(missing_ok=True)
        return None
    (folder / STAMP).write_text(_digest(folder) + "\n")
    log(f"setup: built {archive} ({archive.stat().st_size / 1e6:.0f} MB)")
    return archive


def _warm_up_images(folder: Path) -> None:
    """A few images that take every common path: two labels, PNG and JPEG, a resized copy (a near
    duplicate), an exact copy, a flat colour, a file that is not an image."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(7)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(10):
        y, x = np.mgrid[0:96, 0:128]
        img = np.stack([(x * (i + 1)) % 256, (y * 3 + i * 20) % 256, ((x + y) * 2) % 256], -1).astype(np.float32)
        img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
        name = folder / ("a" if i % 2 else "b") / f"img_{i}.{'jpg' if i % 3 == 0 else 'png'}"
        cv2.imwrite(str(name), img)
        made.append(img)
    cv2.imwrite(str(folder / "a" / "copy_small.png"), cv2.resize(made[1], (64, 48), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(folder / "b" / "copy_exact.png"), made[2])
    cv2.imwrite(str(folder / "b" / "flat.png"), np.full((64, 64, 3), 90, np.uint8))
    (folder / "a" / "notes.txt").write_text("not an image\n")
