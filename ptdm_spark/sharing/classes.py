"""The one rule that gives every class its index (no pyspark here: the loader uses it too).

When the dataset has a ``classes`` table (label, index, ...) at the release's version, its indices
are the truth; otherwise the sorted distinct labels of the release's curated rows, index =
position. Unlabelled images (label NULL) have no class: their index is -1.
"""

from __future__ import annotations

from collections.abc import Iterable

UNLABELLED = -1


def class_indices(labels: Iterable[str | None], table: Iterable[tuple[str, int]] | None = None) -> dict[str, int]:
    """``{label: index}`` for the release's ``labels`` (the curated rows' labels, any order, with
    repeats); ``table``: the (label, index) rows of the ``classes`` table at the release's
    version, or None when the dataset has none."""
    if table is not None:
        return {str(label): int(index) for label, index in table}
    return {label: i for i, label in enumerate(sorted({lb for lb in labels if lb is not None}))}


def label_index(classes: dict[str, int], label: str | None) -> int:
    return UNLABELLED if label is None else classes.get(label, UNLABELLED)
