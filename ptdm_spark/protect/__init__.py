"""Protection: erasure with proof (erase.py)."""
