"""Analysis: the analyst's SQL (read-only checks, the SQL endpoint)."""
