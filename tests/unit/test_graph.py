"""Connected components on the driver (numpy) against a plain breadth-first search."""

from __future__ import annotations

import numpy as np
import pytest

from ptdm_spark.imaging import graph
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


def _brute_groups(n, edges, rank, near):
    """bounded_groups written the slow way: repeatedly take the best unassigned node, grow its
    group by breadth-first search over edges between unassigned nodes near it."""
    adj = {i: set() for i in range(n)}
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    kept, left = list(range(n)), set(range(n))
    comp_of = {}
    for s in range(n):  # connected components, to pick the best node per component in turn
        if s in comp_of:
            continue
        stack, comp_of[s] = [s], s
        while stack:
            u = stack.pop()
            for v in adj[u]:
                if v not in comp_of:
                    comp_of[v] = s
                    stack.append(v)
    while left:
        k = min(left, key=lambda x: rank[x])
        group, stack = {k}, [k]
        while stack:
            u = stack.pop()
            for v in adj[u]:
                if v in left and v not in group and near(k, v):
                    group.add(v)
                    stack.append(v)
        for v in group:
            kept[v] = k
        left -= group
    return kept


def test_bounded_groups_never_chain_past_the_bound():
    """A path of points 10 apart on a line, bound 15 from the kept point: pairs, not one chain."""
    pos = np.arange(6) * 10
    a, b = np.arange(5), np.arange(1, 6)
    kept = graph.bounded_groups(6, a, b, np.arange(6), lambda k, m: np.abs(pos[m] - pos[k]) <= 15)
    assert kept.tolist() == [0, 0, 2, 2, 4, 4]


def test_bounded_groups_equal_the_slow_way_on_random_graphs():
    rng = np.random.default_rng(8)
    for _ in range(60):
        n = int(rng.integers(2, 40))
        pos = rng.uniform(0, 100, n)
        e = [(i, j) for i in range(n) for j in range(i + 1, n) if abs(pos[i] - pos[j]) < 12 and rng.random() < 0.7]
        rank = rng.permutation(n)
        bound = float(rng.uniform(5, 30))
        a = np.array([x for x, _ in e], np.int64)
        b = np.array([y for _, y in e], np.int64)
        got = graph.bounded_groups(n, a, b, rank, lambda k, m, pos=pos, bound=bound: np.abs(pos[m] - pos[k]) <= bound)
        assert got.tolist() == _brute_groups(n, e, rank, lambda k, v, pos=pos, bound=bound: abs(pos[v] - pos[k]) <= bound)
        assert all(abs(pos[i] - pos[got[i]]) <= bound for i in range(n))


def test_bounded_groups_of_a_dataframe_keep_64_bit_hashes_exact():
    """x3 is 24 pHash bits from x0, beyond member_max_distance (20): two groups. As float64 (what a
    pandas column with nulls becomes) the two hashes would look 15 bits apart and join: refused."""
    import pandas as pd

    from ptdm_spark.transforms.dedupe import bounded_groups

    h = 0x0F0F0F0F0F0F0F0F
    nodes = pd.DataFrame({"image_id": ["x0", "x3"], "pixels": [200, 100], "phash": [h, h ^ ((1 << 24) - 1)],
                          "phash_inner": [h, h ^ ((1 << 24) - 1)], "colour_thumb": [None, None],
                          "detail_thumb": [None, None], "alpha_thumb": [None, None], "pixel_sha256": ["p0", "p3"],
                          "small": [False, False]})
    edges = pd.DataFrame({"a": ["x0"], "b": ["x3"]})
    got = bounded_groups(edges, nodes, 20, 0.2, 40.0, 0.23)
    assert dict(zip(got["image_id"], got["kept_id"])) == {"x0": "x0", "x3": "x3"}
    with pytest.raises(TypeError):
        bounded_groups(edges, nodes.astype({"phash": "float64"}), 20, 0.2, 40.0, 0.23)


def test_a_small_kept_image_never_takes_another_small_image():
    """K (88 x 31: small, but the most pixels) - X (40 x 40) - S (28 x 28), all pHashes alike: K
    keeps X, but S is small like K and joins only through a larger image, so it stands alone
    (X is taken). Without the small marks S would join K's group."""
    import pandas as pd

    from ptdm_spark.transforms.dedupe import bounded_groups

    h = 0x0F0F0F0F0F0F0F0F
    nodes = pd.DataFrame({"image_id": ["K", "X", "S"], "pixels": [88 * 31, 40 * 40, 28 * 28], "phash": [h, h, h ^ 1],
                          "phash_inner": [h, h, h ^ 1], "colour_thumb": [None] * 3, "detail_thumb": [None] * 3,
                          "alpha_thumb": [None] * 3, "pixel_sha256": ["pk", "px", "ps"], "small": [True, False, True]})
    edges = pd.DataFrame({"a": ["K", "S"], "b": ["X", "X"]})
    got = bounded_groups(edges, nodes, 20, 0.2, 40.0, 0.23)
    assert dict(zip(got["image_id"], got["kept_id"])) == {"K": "K", "X": "K", "S": "S"}
    got = bounded_groups(edges, nodes.assign(small=False), 20, 0.2, 40.0, 0.23)
    assert dict(zip(got["image_id"], got["kept_id"])) == {"K": "K", "X": "K", "S": "K"}


def test_centre_groups_take_the_first_free_point_and_never_chain():
    """Grey levels 0, 0.15, 0.3, 0.45 (in that order of preference), radius 0.2: 0 takes 0.15,
    0.3 is 0.3 from it and starts its own group with 0.45, although 0.15 and 0.3 are near."""
    pts = np.array([[0.0], [0.15], [0.3], [0.45]])
    assert graph.centre_groups(pts, 0.2).tolist() == [0, 0, 2, 2]
    assert graph.centre_groups(pts[::-1], 0.2).tolist() == [0, 0, 2, 2]  # from 0.45 down
    assert graph.centre_groups(np.empty((0, 3)), 0.2).tolist() == []


def test_centre_groups_equal_the_slow_way_on_random_colours():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(1, 200))
        pts = rng.uniform(0, 1, (n, 3))
        radius = float(rng.uniform(0.05, 0.5))
        want = [-1] * n
        for i in range(n):  # in order: a free point becomes a centre and takes the free points near it
            if want[i] < 0:
                for j in range(n):
                    if want[j] < 0 and max(abs(pts[j] - pts[i])) <= radius:
                        want[j] = i
        got = graph.centre_groups(pts, radius)
        assert got.tolist() == want
        assert (np.abs(pts - pts[got]).max(axis=1) <= radius).all()


def test_the_group_bound_checks_transparency_against_the_kept_image():
    """K and X: one RGBA drawing (K the larger); B: the drawing with a light bar under it, alike
    to both on white but not in alpha. Edges K-X and X-B (as if checked): with the alpha check B
    is not near the kept image K and stands alone; with it off (alpha_max 1) B joins K's group."""
    import pandas as pd

    from ptdm_spark.imaging import normalize, quality
    from ptdm_spark.transforms.dedupe import bounded_groups
    from tests.imagefiles import rgba_drawing

    def thumbs(bgra):
        rgb = normalize.to_rgb8(bgra, (255, 255, 255))
        return quality.colour_thumb(rgb), quality.detail_thumb(rgb), quality.alpha_thumb(normalize.alpha8(bgra))

    (c0, d0, a0), (c1, d1, a1) = thumbs(rgba_drawing()), thumbs(rgba_drawing(bar=True))
    h = 0x0F0F0F0F0F0F0F0F
    nodes = pd.DataFrame({"image_id": ["K", "X", "B"], "pixels": [300, 200, 100], "phash": [h] * 3,
                          "phash_inner": [h] * 3, "colour_thumb": [c0, c0, c1], "detail_thumb": [d0, d0, d1],
                          "alpha_thumb": [a0, a0, a1], "pixel_sha256": ["pk", "px", "pb"], "small": [False] * 3})
    edges = pd.DataFrame({"a": ["K", "X"], "b": ["X", "B"]})
    got = bounded_groups(edges, nodes, 20, 0.2, 42.0, 0.23)
    assert dict(zip(got["image_id"], got["kept_id"])) == {"K": "K", "X": "K", "B": "B"}
    got = bounded_groups(edges, nodes, 20, 0.2, 42.0, 1.0)
    assert dict(zip(got["image_id"], got["kept_id"])) == {"K": "K", "X": "K", "B": "K"}
