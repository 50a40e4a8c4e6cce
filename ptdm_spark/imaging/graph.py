"""Connected components of an edge list in memory (numpy; no Spark): for the near-duplicate
graphs that fit on the driver, which is nearly all of them (a million images make ~10^5 pairs)."""

from __future__ import annotations

from collections.abc import Callable

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


def bounded_groups(n: int, a: np.ndarray, b: np.ndarray, rank: np.ndarray,
                   near_kept: Callable[[int, np.ndarray], np.ndarray]) -> np.ndarray:
    """Groups of nodes ``0..n-1`` joined by the edges (a[i], b[i]), none wider than ``near_kept``
    allows: the kept node of each group is near every member, so chains cannot link far nodes.

    Within each connected component, the unassigned node of smallest ``rank`` becomes a kept
    node; its group is every unassigned node that is ``near_kept`` to it and reachable from it
    through edges between such nodes; repeat until every node of the component is assigned.
    Deterministic (ranks are distinct: the caller breaks ties).

    Args:
        n: number of nodes.
        a, b: edge ends (node indices).
        rank: (n,) order of preference for the kept node, smaller first.
        near_kept: ``near_kept(k, nodes)`` -> bool array: which of ``nodes`` may share a group
            kept by ``k`` (``k`` itself among them or not).

    Returns:
        (n,) the kept node of every node (itself for a kept node or a node without edges).
    """
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    kept = np.arange(n)
    if not len(a):
        return kept
    nodes, comp = components(a, b)
    ends = np.concatenate([a, b])
    order = np.argsort(np.concatenate([a, b]), kind="stable")
    nbr = np.concatenate([b, a])[order]
    start = np.searchsorted(ends[order], np.arange(n + 1))
    by_comp = np.argsort(comp, kind="stable")
    cuts = np.flatnonzero(np.diff(comp[by_comp])) + 1
    rank = np.asarray(rank)
    for members in np.split(nodes[by_comp], cuts):
        members = members[np.argsort(rank[members], kind="stable")]
        left = np.ones(len(members), bool)
        where = {int(m): i for i, m in enumerate(members)}
        while left.any():
            k = int(members[np.argmax(left)])
            ok = np.zeros(len(members), bool)
            ok[left] = near_kept(k, members[left])
            ok[where[k]] = True
            seen, todo = {k}, [k]
            while todo:
                u = todo.pop()
                for v in nbr[start[u]:start[u + 1]].tolist():
                    i = where[v]
                    if v not in seen and ok[i]:
                        seen.add(v)
                        todo.append(v)
            for v in seen:
                kept[v] = k
                left[where[v]] = False
    return kept


def centre_groups(points: np.ndarray, radius: float) -> np.ndarray:
    """Groups of ``points`` (n x d, in order of preference) no wider than ``radius``: the first
    point not yet grouped becomes a centre and takes every ungrouped point within ``radius`` of
    it in every coordinate (Chebyshev distance); repeat. Returns (n,) each point's centre index.

    Centres are more than ``radius`` apart, so in a bounded space (colours: 0..1 per channel)
    there are at most ``(1 / radius + 1) ** d`` of them, and the work is that times n.
    """
    points = np.asarray(points, np.float64)
    centre = np.full(len(points), -1, np.int64)
    free = np.arange(len(points))
    while len(free):
        k = free[0]
        near = np.abs(points[free] - points[k]).max(axis=1) <= radius
        near[0] = True
        centre[free[near]] = k
        free = free[~near]
    return centre
