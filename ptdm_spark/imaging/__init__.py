"""Per-image work on bytes and numpy arrays: sniff, validate, decode, score, hash, normalize.

This package never imports pyspark. Its entry point, :func:`ptdm_spark.imaging.pipeline.process_image`,
never raises for bad data: it returns a result or a reason code (see :mod:`.reasons`), so it can be
tested without Spark and wrapped by a thin pandas UDF.
"""
