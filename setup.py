"""Packaging for ptdm-spark.

Every third-party pin of the project lives here and nowhere else. The Delta jar that
``scripts/setup.sh`` fetches is derived from the installed ``pyspark`` and ``delta-spark``
versions, so changing a pin below is the only edit needed to move the stack.
"""

from setuptools import find_packages, setup

# pyspark: the newest release that the newest delta-spark with a matching jar on Maven Central
# supports. delta-spark 4.4.1 (PyPI) declares pyspark<=4.2.0, but its jar for Spark 4.2
# (io.delta:delta-spark_4.2_2.13:4.4.1) is not on Maven Central; 4.4.0 has both the jar and the
# same pyspark bound, so Python package and jar are pinned to the same 4.4.0.
RUNTIME = [
    "pyspark[connect]==4.2.0",  # connect: the Spark Connect client of ptdm sql / the SQL endpoint (grpcio, zstandard)
    "delta-spark==4.4.0",
    "pandas>=2.2,<3",  # pyspark warns that it does not fully support pandas 3
    "pyarrow>=15,<27",
    "numpy>=2.0,<3",  # np.bitwise_count (near-duplicate search)
    "opencv-python-headless>=4.9,<6",
    "pillow-heif>=1.0,<2",  # HEIC/HEIF (the iPhone default) through libheif; brings Pillow
    "hdfs==2.7.3",
    "pyyaml>=6,<7",
]

DEV = [
    "pytest>=8",
    "ruff>=0.6",
    "deltalake>=1.0,<2",  # a second, non-JVM Delta reader used by the tests
    "pillow>=10",  # makes edge-case image files (CMYK, palette, EXIF) in the tests
]

setup(
    name="ptdm-spark",
    version="0.1.0",
    description="Pre-training data management for image datasets on Apache Spark and Delta Lake",
    python_requires=">=3.10",
    packages=find_packages(include=["ptdm_spark", "ptdm_spark.*"]),
    install_requires=RUNTIME,
    extras_require={"dev": DEV},
    entry_points={"console_scripts": ["ptdm=ptdm_spark.cli:main"]},
)
