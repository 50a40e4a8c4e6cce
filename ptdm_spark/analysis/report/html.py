"""The report: each plot as a PNG, and ``report.html``, one self-contained page (plots and
thumbnails as data URIs, inline CSS, no script, no external URL)."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ptdm_spark.analysis.report import plots

if TYPE_CHECKING:
    from ptdm_spark.analysis.analyze import Analysis

CSS = """
body{font-family:sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px} h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:8px} figure{margin:0;width:120px;font-size:10px;word-break:break-all}
figure img{image-rendering:pixelated;max-width:112px;max-height:112px;border:1px solid #ccc}
.plots img{max-width:100%} .muted{color:#777}
"""


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def figures(a: "Analysis") -> dict[str, bytes]:
    """Every plot of the report as PNG bytes, by file name (without extension)."""
    stats = a.stats
    counts = {}
    splits: list[str] = []
    for r in stats:
        if r["scope"] == "label_split" and r["metric"] == "count":
            lb, _, sp = r["key"].rpartition("/")
            counts[(lb, sp)] = int(r["value"])
            if sp not in splits:
                splits.append(sp)
    order = ["train", "val", "test"]
    splits.sort(key=lambda s: (order.index(s) if s in order else 9, s))
    out = {
        "funnel": plots.png(plots.funnel(a.funnel, a.rejects)),
        "classes": plots.png(plots.class_split_bars(counts, splits)),
        "scorecard": plots.png(plots.scorecard([(d.dimension, d.score) for d in a.scorecard])),
    }
    for col in ("width", "height", "aspect_ratio", "size_bytes"):
        out[f"hist_{col}"] = plots.png(plots.histogram(col, a.score_samples.get(col, []),
                                                       a.thresholds.get(col, [])))
    for col in ("blur", "brightness", "contrast", "entropy", "channel_spread"):
        out[f"score_{col}"] = plots.png(plots.histogram(col, a.score_samples.get(col, []), a.thresholds.get(col, [])))
    names: list[str] = []
    for r in a.correlations:
        for n in (r["a"], r["b"]):
            if n not in names:
                names.append(n)
    for method in ("pearson", "spearman"):
        m = [[1.0 if i == j else None for j in range(len(names))] for i in range(len(names))]
        for r in a.correlations:
            if r["method"] == method:
                i, j = names.index(r["a"]), names.index(r["b"])
                m[i][j] = m[j][i] = r["value"]
        out[f"correlation_{method}"] = plots.png(plots.heatmap(names, m, f"{method} correlation"))
    return out


def _table(header: list[str], rows: list[list[Any]]) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _gallery(items: list[Mapping[str, Any]]) -> str:
    figs = []
    for it in items:
        cap = f"{html.escape(it['caption'])}<br>{html.escape(it['image_id'][:16])}…<br><span class=muted>" \
              f"{html.escape(str(it['source'] or '')[-60:])}</span>"
        figs.append(f"<figure><img src=\"{_uri(it['png'])}\" alt=\"{html.escape(it['image_id'])}\" "
                    f"title=\"{html.escape(it['image_id'])}\"><figcaption>{cap}</figcaption></figure>")
    return f"<div class=grid>{''.join(figs)}</div>"


def render(a: "Analysis", figs: Mapping[str, bytes]) -> str:
    """The page, as text: every image inline."""
    def img(name: str) -> str:
        return f"<img src=\"{_uri(figs[name])}\" alt=\"{name}\">"

    ds = {r["metric"]: r["value"] for r in a.stats if r["scope"] == "dataset"}
    ch = [[c, ds.get(f"channel_mean_{c}"), ds.get(f"channel_std_{c}")] for c in ("R", "G", "B")]
    card = [[d.dimension, round(d.score, 4), d.formula, d.detail] for d in a.scorecard]
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>ptdm report: {html.escape(a.dataset)} curated "
        f"v{a.version}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(a.dataset)} — curated version {a.version}</h1>",
        f"<p>{a.funnel.get('curated', 0):,} curated images, {a.outlier_count:,} outlier rows. "
        "Tables: stats, correlations, outliers, scorecard (keyed by curated_version).</p>",
        "<h2>Scorecard</h2>", img("scorecard"), _table(["dimension", "score", "formula", "measured"], card),
        "<h2>Accounting funnel</h2>", img("funnel"),
        "<h2>Images per class and split</h2>", img("classes"),
        "<h2>Normalization constants</h2><p>mean and std of every channel over all pixels of the curated "
        "images (0..1; grey images count as R = G = B):</p>", _table(["channel", "mean", "std"], ch),
        "<h2>Sizes</h2><div class=plots>", *[img(f"hist_{c}") for c in ("width", "height", "aspect_ratio",
                                                                        "size_bytes")], "</div>",
        "<h2>Quality scores (thresholds dashed)</h2><div class=plots>",
        *[img(f"score_{c}") for c in ("blur", "brightness", "contrast", "entropy", "channel_spread")], "</div>",
        "<h2>Correlations</h2>", img("correlation_pearson"), img("correlation_spearman"),
    ]
    order = ("rejects", "duplicate", "label conflict", "outliers", "flag")
    for prefix in order:
        sections = [s for s in a.galleries if s.startswith(prefix)]
        if not sections:
            continue
        title = {"rejects": "Rejects by reason", "duplicate": "Largest duplicate clusters",
                 "label conflict": "Label conflicts", "outliers": "Outliers within their label",
                 "flag": "Lowest-scoring images per flag"}[prefix]
        parts.append(f"<h2>{title}</h2>")
        for s in sorted(sections):
            parts.append(f"<h3>{html.escape(s)}</h3>{_gallery(a.galleries[s])}")
    parts.append("</body></html>")
    return "\n".join(parts)
