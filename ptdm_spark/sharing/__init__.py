"""Sharing: named releases (``releases``), reproducible exports (``export``, ``formats``), and the
training loader without Spark (``loader``). ``loader``, ``formats``, ``outputs`` and ``classes``
never import pyspark."""
