"""DataFrame -> DataFrame functions: no I/O, no sessions, no config trees (only their section)."""
