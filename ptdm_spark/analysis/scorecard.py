"""The five quality dimensions of the design brief, each a score in [0, 1] from measured inputs.

Plain Python (no Spark): ``ptdm analyze`` measures the inputs in Spark (:func:`measure` names
them) and this module turns them into scores, so each definition is testable on its own. Every
score is a product of factors ``1 - rate`` (or a share), so any planted problem lowers it and a
clean dataset scores 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DIMENSIONS = ("accuracy", "completeness", "consistency", "reliability", "timeliness")

FORMULAS = {
    "accuracy": "(1 - conflict_images / images) * (1 - outlier_images / curated)",
    "completeness": "usable_objects / source_objects * (1 - empty_cells / cells)",
    "consistency": "(1 - leaking / curated) * (1 - multi_label_images / images) * modal_shape_share",
    "reliability": "(1 - rejected_objects / source_objects) * (1 - decoder_warning_images / images)",
    "timeliness": "fresh_objects / dated_objects * max(0, 1 - days_since_last_ingest / freshness_days)",
}


@dataclass(frozen=True)
class Dimension:
    dimension: str
    score: float
    inputs: dict[str, float]
    formula: str
    detail: str


def _rate(num: float, den: float) -> float:
    return min(1.0, num / den) if den > 0 else 0.0


def _clip(x: float) -> float:
    return max(0.0, min(1.0, x))


def cells(labels: list[str], held: set[str], filled: set[str], ratios: Mapping[str, float],
          source_splits: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The splits curated is expected to fill, and the (label, split) cells it leaves empty.

    Expected: the splits curated holds, and the configured ratio splits (``curate.splits`` above
    0) unless every image keeps its source's split (``source_splits: keep``: Fashion-MNIST's
    train/test has no val to fill). ``filled`` holds the ``label_split`` keys ``<label>/<split>``
    (a label may contain "/", as Fashion's ``T-shirt/top``; a split does not).
    """
    expected = set(held) | ({s for s, r in ratios.items() if r > 0} if source_splits != "keep" else set())
    splits = sorted(expected)
    have = {tuple(k.rsplit("/", 1)) for k in filled}
    return splits, [(lb, sp) for lb in labels for sp in splits if (lb, sp) not in have]


def compute(m: Mapping[str, float], details: Mapping[str, str] | None = None) -> list[Dimension]:
    """The scorecard from the measured inputs ``m`` (keys: the names in :data:`FORMULAS`)."""
    details = details or {}
    g = lambda k: float(m.get(k, 0.0))  # noqa: E731
    curated, images, objects = g("curated"), g("images"), g("source_objects")
    scores = {
        "accuracy": (1 - _rate(g("conflict_images"), images)) * (1 - _rate(g("outlier_images"), curated)),
        "completeness": (g("usable_objects") / objects if objects else 0.0)
        * (1 - _rate(g("empty_cells"), g("cells"))),
        "consistency": (1 - _rate(g("leaking"), curated)) * (1 - _rate(g("multi_label_images"), images))
        * g("modal_shape_share"),
        "reliability": (1 - _rate(g("rejected_objects"), objects)) * (1 - _rate(g("decoder_warning_images"), images)),
        "timeliness": (g("fresh_objects") / g("dated_objects") if g("dated_objects") else 1.0)
        * max(0.0, 1 - g("days_since_last_ingest") / g("freshness_days") if g("freshness_days") else 0.0),
    }
    used = {
        "accuracy": ("conflict_images", "images", "outlier_images", "curated"),
        "completeness": ("usable_objects", "source_objects", "empty_cells", "cells"),
        "consistency": ("leaking", "curated", "multi_label_images", "images", "modal_shape_share"),
        "reliability": ("rejected_objects", "source_objects", "decoder_warning_images", "images"),
        "timeliness": ("fresh_objects", "dated_objects", "days_since_last_ingest", "freshness_days"),
    }
    return [Dimension(d, _clip(scores[d]), {k: g(k) for k in used[d]}, FORMULAS[d], details.get(d, ""))
            for d in DIMENSIONS]
