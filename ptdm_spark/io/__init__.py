"""Storage: source readers and the one Delta writer."""
