"""One function per plot: aggregates in, a matplotlib Figure out (object API, Agg backend).
No Spark here: the numbers come from ``ptdm analyze``'s aggregates."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

ACCENT = "#3b6ea8"
WARN = "#c0392b"


def png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return buf.getvalue()


def funnel(stages: Mapping[str, int], rejects: Mapping[str, int]) -> Figure:
    """Source objects -> raw -> images -> curated, and rejects by stage:reason."""
    fig = Figure(figsize=(9, 3.6))
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    names, values = list(stages), list(stages.values())
    ax.barh(names[::-1], values[::-1], color=ACCENT)
    for i, v in enumerate(values[::-1]):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_title("accounting funnel")
    ax.set_xlim(0, max(values + [1]) * 1.25)
    if rejects:
        items = sorted(rejects.items(), key=lambda kv: -kv[1])
        bx.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color=WARN)
        bx.set_title("rejects by stage:reason")
    else:
        bx.text(0.5, 0.5, "no rejects", ha="center", va="center")
        bx.set_axis_off()
    fig.tight_layout()
    return fig


def class_split_bars(counts: Mapping[tuple[str, str], int], splits: Sequence[str]) -> Figure:
    """Images per class, stacked by split (the chart the design brief draws first)."""
    labels = sorted({lb for lb, _ in counts})
    fig = Figure(figsize=(max(6, 0.55 * len(labels) + 2), 4))
    ax = fig.subplots()
    bottom = [0] * len(labels)
    colours = ["#3b6ea8", "#e6a23c", "#67a35a", "#8e5ea2", "#999999"]
    for i, sp in enumerate(splits):
        vals = [counts.get((lb, sp), 0) for lb in labels]
        ax.bar(labels, vals, bottom=bottom, label=sp, color=colours[i % len(colours)])
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_ylabel("curated images")
    ax.set_title("images per class and split")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=45, labelsize=8)
    fig.tight_layout()
    return fig


def histogram(name: str, bins: Sequence[tuple[float, float]], thresholds: Sequence[tuple[str, float]] = ()) -> Figure:
    """A histogram from (left edge, count) bins, with the configured thresholds drawn."""
    fig = Figure(figsize=(4.2, 2.8))
    ax = fig.subplots()
    if len(bins) == 1:  # every value the same (Fashion-MNIST's 28 px): say so, no made-up range
        value, count = bins[0]
        span = max(1.0, abs(value) * 0.1)
        near = [(tname, t) for tname, t in thresholds if abs(t - value) <= 10 * span]
        ax.bar([value], [count], width=0.3 * span, color=ACCENT)
        ax.set_xticks([value], [f"{value:g}"])
        ax.set_xlim(min([value - span, *(t - 0.2 * span for _, t in near)]),
                    max([value + span, *(t + 0.2 * span for _, t in near)]))
        for tname, t in near:
            ax.axvline(t, color=WARN, linestyle="--", linewidth=1.2)
            ax.text(t, ax.get_ylim()[1] * 0.92, f" {tname}={t:g}", color=WARN, fontsize=7)
        name = f"{name}: all {int(count):,} = {value:g}"
    elif bins:
        edges = [b for b, _ in bins]
        width = (edges[1] - edges[0]) if len(edges) > 1 else 1.0
        ax.bar(edges, [c for _, c in bins], width=width, align="edge", color=ACCENT)
        lo, hi = edges[0], edges[-1] + width
        for tname, t in thresholds:
            if lo - (hi - lo) <= t <= hi + (hi - lo):
                ax.axvline(t, color=WARN, linestyle="--", linewidth=1.2)
                ax.text(t, ax.get_ylim()[1] * 0.92, f" {tname}={t:g}", color=WARN, fontsize=7)
    else:
        ax.text(0.5, 0.5, "no values", ha="center", va="center")
    ax.set_title(name, fontsize=10)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def heatmap(names: Sequence[str], matrix: Sequence[Sequence[float | None]], title: str) -> Figure:
    fig = Figure(figsize=(5.6, 4.8))
    ax = fig.subplots()
    data = [[float("nan") if v is None else v for v in row] for row in matrix]
    im = ax.imshow(data, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if v == v:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def scorecard(dimensions: Sequence[tuple[str, float]]) -> Figure:
    fig = Figure(figsize=(6, 2.6))
    ax = fig.subplots()
    names = [d for d, _ in dimensions][::-1]
    vals = [s for _, s in dimensions][::-1]
    ax.barh(names, vals, color=[("#67a35a" if v >= 0.9 else "#e6a23c" if v >= 0.6 else WARN) for v in vals])
    for i, v in enumerate(vals):
        ax.text(min(v, 0.9), i, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_title("scorecard")
    fig.tight_layout()
    return fig
