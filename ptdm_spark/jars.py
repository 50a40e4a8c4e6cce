"""The Delta Lake jars: which ones this pyspark needs, where ptdm finds them, how it fetches them.

delta-spark's Python package holds no jars. ptdm resolves the matching
``io.delta:delta-spark_<Spark major.minor>_2.13`` once with Maven from Maven Central and puts the
jars on ``spark.jars``, so no Spark session downloads anything at start. Where they are looked
for, first match wins:

1. ``$PTDM_JARS_DIR``;
2. ``.jars/`` of the checkout the package runs from (written by ``scripts/setup.sh``);
3. the user cache, ``${XDG_CACHE_HOME:-~/.cache}/ptdm-spark/jars/spark<M.m>-delta<version>``
   (written by ``ptdm setup``, for an installed wheel).

Without Maven, Spark's own route works too: ``--conf spark.jars.packages=<coordinate>`` (Spark
then resolves it with Ivy at every start). This module never imports pyspark: it reads the
installed versions from the package metadata.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ptdm_spark.errors import UsageError

STAMP = ".coordinates"


@dataclass(frozen=True)
class Coordinate:
    """The Delta jar for the installed pyspark and delta-spark."""

    spark_minor: str  # e.g. "4.2"
    delta_version: str  # the installed delta-spark, e.g. "4.4.0"

    @property
    def artifact(self) -> str:
        return f"delta-spark_{self.spark_minor}_2.13"

    @property
    def version_range(self) -> str:
        """Maven range: the newest jar of the installed delta-spark's minor line, not newer than it
        (a patch release of the Python package may come without a jar for every Spark version)."""
        minor = ".".join(self.delta_version.split(".")[:2])
        return f"[{minor}.0,{self.delta_version}]"

    def __str__(self) -> str:
        return f"io.delta:{self.artifact}:{self.delta_version}"


def coordinate() -> Coordinate:
    try:
        spark, delta = md.version("pyspark"), md.version("delta-spark")
    except md.PackageNotFoundError as exc:
        raise UsageError(f"{exc.name} is not installed: pip install ptdm-spark (or pyspark and delta-spark)") from None
    return Coordinate(".".join(spark.split(".")[:2]), delta)


def checkout_dir() -> Path:
    """``.jars/`` beside the package when it runs from a checkout (``scripts/setup.sh`` fills it)."""
    return Path(__file__).resolve().parent.parent / ".jars"


def cache_dir(coord: Coordinate | None = None) -> Path:
    """The per-user folder ``ptdm setup`` fills, one per Spark minor and delta-spark version."""
    coord = coord or coordinate()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ptdm-spark" / "jars" / f"spark{coord.spark_minor}-delta{coord.delta_version}"


def candidates() -> list[Path]:
    env = os.environ.get("PTDM_JARS_DIR")
    if env:
        return [Path(env)]
    return [checkout_dir(), cache_dir()]


def _jars_in(d: Path, coord: Coordinate) -> list[str]:
    if not d.is_dir():
        return []
    jars = sorted(str(p) for p in d.glob("*.jar"))
    return jars if any(Path(j).name.startswith(coord.artifact + "-") for j in jars) else []


def find() -> tuple[Path, list[str]]:
    """The first folder holding the Delta jar for this pyspark, and its jars (empty if none)."""
    coord = coordinate()
    for d in candidates():
        jars = _jars_in(d, coord)
        if jars:
            return d, jars
    return candidates()[0], []


def missing_hint() -> str:
    """One line: how to get the jars."""
    coord = coordinate()
    return (f"Delta jars for {coord} not found (looked in {', '.join(str(d) for d in candidates())}): "
            f"run `ptdm setup` (fetches them with Maven), or pass --conf spark.jars.packages={coord}")


def fetch(dest: Path, *, quiet: bool = True, log=print) -> list[str]:
    """Resolve the Delta jar and its runtime dependencies with Maven into ``dest``.

    Jars of libraries that pyspark already ships (Hadoop, Jackson, Parquet, log4j...) are left
    out: an older copy on the classpath would shadow Spark's own. A rerun with the same
    coordinate changes nothing.

    Raises:
        UsageError: Maven is missing or could not resolve the coordinate.
    """
    coord = coordinate()
    stamp = dest / STAMP
    if stamp.is_file() and stamp.read_text().strip() == str(coord) and _jars_in(dest, coord):
        log(f"setup: Delta jars up to date in {dest} ({coord})")
        return _jars_in(dest, coord)
    mvn = shutil.which("mvn")
    if not mvn:
        raise UsageError(f"mvn not found: install Maven (Debian: apt-get install maven), "
                         f"or pass --conf spark.jars.packages={coord} instead")
    log(f"setup: fetching {coord.artifact} {coord.version_range} and its dependencies from Maven Central into {dest}")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ptdm-jars-") as tmp:
        pom = Path(tmp) / "pom.xml"
        pom.write_text(f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ptdm</groupId><artifactId>ptdm-delta-jars</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>io.delta</groupId><artifactId>{coord.artifact}</artifactId>
      <version>{coord.version_range}</version></dependency>
  </dependencies>
</project>
""")
        out = Path(tmp) / "all"
        cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(pom), "dependency:copy-dependencies",
               "-DincludeScope=runtime", f"-DoutputDirectory={out}"]
        proc = subprocess.run(cmd, capture_output=quiet, text=True)
        if proc.returncode != 0:
            if quiet:
                sys.stderr.write((proc.stdout or "")[-4000:] + (proc.stderr or "")[-2000:])
            raise UsageError(f"Maven could not fetch {coord.artifact} {coord.version_range} from Maven Central "
                             "(see the output above)")
        bundled = {_artifact(n) for n in os.listdir(_pyspark_jars())}
        for old in dest.glob("*.jar"):
            if old.name != CRYPTO_JAR:  # ours, built by build_crypto from the package's sources
                old.unlink()
        for jar in sorted(out.glob("*.jar")):
            if _artifact(jar.name) not in bundled:
                shutil.copy2(jar, dest / jar.name)
    stamp.write_text(f"{coord}\n")
    jars = _jars_in(dest, coord)
    if not jars:
        raise UsageError(f"Maven resolved no {coord.artifact} jar into {dest}")
    log(f"setup: {len(jars)} jars in {dest}")
    return jars


def _artifact(name: str) -> str:
    """``delta-storage-4.4.0.jar`` -> ``delta-storage``."""
    return re.sub(r"-\d[\w.\-]*\.jar$", "", name)


def _pyspark_jars() -> Path:
    """pyspark's own jars folder, found without importing pyspark (no JVM, no py4j)."""
    files = md.files("pyspark") or []
    for f in files:
        parts = Path(str(f)).parts
        if len(parts) >= 3 and parts[-2] == "jars" and parts[-3] == "pyspark":
            return Path(str(f.locate())).parent
    raise UsageError("pyspark's jars folder not found: reinstall pyspark")


CRYPTO_JAR = "ptdm-crypto.jar"
CRYPTO_STAMP = ".crypto-sources"


def java_sources() -> list[Path]:
    """The Java sources of ptdm's Parquet encryption classes (package data, ``ptdm_spark/java``)."""
    return sorted((Path(__file__).resolve().parent / "java").rglob("*.java"))


def crypto_jar() -> Path | None:
    """``ptdm-crypto.jar`` beside the Delta jars that :func:`find` chose, or None when not built."""
    jar = find()[0] / CRYPTO_JAR
    return jar if jar.is_file() else None


def _crypto_digest() -> str:
    import hashlib

    digest = hashlib.sha256(md.version("pyspark").encode())
    for src in java_sources():
        digest.update(src.name.encode() + src.read_bytes())
    return digest.hexdigest()


def crypto_up_to_date(dest: Path) -> bool:
    """True when ``dest/ptdm-crypto.jar`` was built from the current sources for this pyspark."""
    stamp = dest / CRYPTO_STAMP
    return (dest / CRYPTO_JAR).is_file() and stamp.is_file() and stamp.read_text().strip() == _crypto_digest()


def build_crypto(dest: Path, *, log=print) -> Path:
    """Compile ``ptdm_spark/java`` against pyspark's own jars (Parquet, Hadoop) into
    ``dest/ptdm-crypto.jar``: the KMS client and crypto factory of ``security.encryption``.
    A rerun with the same sources and pyspark changes nothing (a stamp of their SHA-256).

    Raises:
        UsageError: no ``javac`` (a JDK is needed, not only a JRE), or it failed.
    """
    import zipfile

    sources = java_sources()
    want = _crypto_digest()
    jar, stamp = dest / CRYPTO_JAR, dest / CRYPTO_STAMP
    if crypto_up_to_date(dest):
        log(f"setup: {CRYPTO_JAR} up to date in {dest}")
        return jar
    javac = shutil.which("javac")
    if not javac:
        raise UsageError("javac not found: building ptdm-crypto.jar (encryption at rest) needs a JDK "
                         "(Debian: apt-get install openjdk-17-jdk-headless)")
    bundled = _pyspark_jars()
    classpath = ":".join(str(bundled / n) for n in sorted(os.listdir(bundled))
                         if n.startswith(("parquet-", "hadoop-client-api", "slf4j-api")))
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ptdm-crypto-") as tmp:
        proc = subprocess.run([javac, "--release", "17", "-nowarn", "-d", tmp, "-cp", classpath, *map(str, sources)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise UsageError("javac could not compile ptdm_spark/java (see the output above)")
        part = dest / (CRYPTO_JAR + ".part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: ptdm-spark\n\n")
            for cls in sorted(Path(tmp).rglob("*.class")):
                z.write(cls, cls.relative_to(tmp).as_posix())
        part.replace(jar)
    stamp.write_text(want + "\n")
    log(f"setup: built {jar} ({len(sources)} Java sources)")
    return jar


def setup(dest: Path, fetch_jars: bool = True) -> None:
    """Everything ptdm keeps beside the Delta jars, in order: the jars (Maven), ``ptdm-crypto.jar``,
    the driver's class archive (:mod:`ptdm_spark.class_archive`, made by a run that needs the
    other two). Each step does nothing when up to date. ``scripts/setup.sh`` and ``ptdm setup``."""
    from ptdm_spark import class_archive

    if fetch_jars:
        fetch(dest)
    build_crypto(dest)
    class_archive.build(dest)


if __name__ == "__main__":  # scripts/setup.sh: python -m ptdm_spark.jars DEST
    try:
        setup(Path(sys.argv[1]) if len(sys.argv) > 1 else cache_dir())
    except UsageError as exc:
        print(f"setup: {exc}", file=sys.stderr)
        sys.exit(2)
