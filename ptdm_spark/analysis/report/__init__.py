"""The analysis report: one plot function per figure (matplotlib, Agg; data in, figure out) and a
self-contained HTML page that embeds them (no request leaves the page)."""
