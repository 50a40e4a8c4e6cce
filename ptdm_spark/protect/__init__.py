"""Protection: backup and restore of a dataset's Delta tables (``backup``, ``restore``), erasure with
proof (``erase``)."""
