"""Connected components on the driver (numpy) against a plain breadth-first search."""

from __future__ import annotations

import numpy as np
import pytest

from ptdm_spark.imaging.graph import components

pytestmark = pytest.mark.unit


def _bfs(a, b) -> dict[int, int]:
    adj: dict[int, set[int]] = {}
    for x, y in zip(a.tolist(), b.tolist()):
        adj.setdefault(x, set()).add(y)
        adj.setdefault(y, set()).add(x)
    comp: dict[int, int] = {}
    for start in sorted(adj):
        if start in comp:
            continue
        group, todo = [], [start]
        while todo:
            u = todo.pop()
            if u not in comp:
                comp[u] = start  # sorted starts: the first node reached is the smallest
                group.append(u)
                todo += adj[u]
    return comp


def test_a_long_chain_in_random_order_is_one_component_named_by_its_smallest_node():
    order = np.random.default_rng(0).permutation(500) * 7 + 3
    nodes, comp = components(order[:-1], order[1:])
    assert sorted(nodes.tolist()) == sorted(order.tolist())
    assert set(comp.tolist()) == {3}


def test_random_graphs_match_breadth_first_search():
    rng = np.random.default_rng(1)
    for _ in range(100):
        k, m = int(rng.integers(2, 300)), int(rng.integers(1, 400))
        a, b = rng.integers(-k, k, m), rng.integers(-k, k, m)  # negative ids too: pHashes are signed longs
        nodes, comp = components(a, b)
        assert dict(zip(nodes.tolist(), comp.tolist())) == _bfs(a, b)


def test_self_loops_and_repeated_edges():
    nodes, comp = components(np.array([5, 5, 9, 9]), np.array([5, 9, 5, 9]))
    assert nodes.tolist() == [5, 9] and comp.tolist() == [5, 5]
