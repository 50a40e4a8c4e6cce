"""Connected components of an edge list in memory (numpy; no Spark): for the near-duplicate
graphs that fit on the driver, which is nearly all of them (a million images make ~10^5 pairs)."""

from __future__ import annotations

import numpy as np


def components(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nodes, comp) for the undirected edges (a[i], b[i]): every node that has an edge, and the
    smallest node of its component.

    Union by hooking roots onto smaller roots, then full path compression, until every edge's two
    ends share a root. Pointers only ever go to smaller nodes, so the smallest node of a component
    is never hooked: it is the component's root at the end.
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape != b.shape:
        raise ValueError(f"edge ends differ in length: {a.shape} and {b.shape}")
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: len(a)], inv[len(a):]
    parent = np.arange(len(nodes))
    while True:
        ra, rb = parent[ia], parent[ib]
        split = ra != rb
        if not split.any():
            return nodes, nodes[parent]
        lo, hi = np.minimum(ra[split], rb[split]), np.maximum(ra[split], rb[split])
        np.minimum.at(parent, hi, lo)  # hi is a root: only roots are re-pointed
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
