"""Worker functions for the loader's multi-process test (importable under spawn; no pyspark)."""

from __future__ import annotations

import hashlib
import sys


def read_items(args):
    """(image_id, class name, SHA-256 of the RGB pixels, shape) of items ``indices`` of ``ds``,
    and whether this worker process imported pyspark."""
    ds, indices = args
    out = []
    for i in indices:
        image, label = ds[i]
        out.append((ds.image_ids[i], ds.classes[label], hashlib.sha256(image.tobytes()).hexdigest(), image.shape))
    return out, "pyspark" in sys.modules
