"""Near-duplicate benchmarks: detection quality on real photos, and search cost at scale.

    python -m benchmarks.near_duplicates quality            # photos + transformed copies
    python -m benchmarks.near_duplicates scale --n 1000000  # synthetic 64-bit hashes, in Spark

quality: every source photo (scikit-image's sample photos and Debian's gnome-backgrounds
wallpapers, one of each near-identical pair dropped) plus 12 copies of it: JPEG at quality 90 /
70 / 50 / 30, resized to 1/2 and 1/4, brightened, gamma 0.8 and 1.25, Gaussian blur (sigma 1.5),
cropped by 2 % and 4 % on every side. pHashes come from ``imaging.pipeline.process_image``, the
pipeline's own per-image function. Pairs are scored two ways at each threshold: *direct* (the
pair's own distance is within the threshold) and *component* (the two images end up in the same
component, which is what dedupe reports). Positive pairs: two images made from the same photo.

scale: N hashes in Spark, 10 % of them planted near copies of another at distance 1..threshold;
the banded search of the dedupe job (same transform), its candidate comparisons (model), time,
and the recall against brute force for a sample of 2,000 hashes (must be 1.0).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ptdm_spark.imaging import hashing
from ptdm_spark.imaging.cv import cv2


def _photos(cache: Path) -> list[np.ndarray]:
    from benchmarks.prepare import source_photos

    out, seen = [], []
    for img in source_photos(cache):
        h = _phash(img)
        if any(hashing.hamming(h, s) <= 16 for s in seen):  # motorcycle left/right, chessboard grey/RGB...
            continue
        seen.append(h)
        if max(img.shape[:2]) > 1024:
            s = 1024 / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out.append(img)
    return out


def _hashes(bgr: np.ndarray) -> tuple[int, int]:
    from ptdm_spark.config import load_config
    from ptdm_spark.imaging.pipeline import Params, process_image

    global _PARAMS
    if _PARAMS is None:
        _PARAMS = Params.from_config(load_config().process)
    ok, buf = cv2.imencode(".png", bgr)
    rec = process_image(buf.tobytes(), _PARAMS)
    return rec["phash"], rec["dhash"]


def _phash(bgr: np.ndarray) -> int:
    return _hashes(bgr)[0]


_PARAMS = None


def transforms(img: np.ndarray) -> dict[str, np.ndarray]:
    h, w = img.shape[:2]
    out = {"original": img}
    for q in (90, 70, 50, 30):
        out[f"jpeg{q}"] = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_COLOR)
    out["half"] = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    out["quarter"] = cv2.resize(img, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
    out["brighter"] = cv2.convertScaleAbs(img, alpha=1.0, beta=30)
    for g in (0.8, 1.25):
        lut = np.array([(i / 255.0) ** g * 255 for i in range(256)]).astype(np.uint8)
        out[f"gamma{g}"] = cv2.LUT(img, lut)
    out["blur"] = cv2.GaussianBlur(img, (0, 0), 1.5)
    for c in (0.02, 0.04):
        dy, dx = int(h * c), int(w * c)
        out[f"crop{int(c * 100)}%"] = img[dy : h - dy, dx : w - dx]
    return out


def _components(rows: list[tuple], near) -> list[int]:
    parent = list(range(len(rows)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in itertools.combinations(range(len(rows)), 2):
        if near(rows[i], rows[j]):
            parent[find(i)] = find(j)
    return [find(i) for i in range(len(rows))]


def quality(cache: Path, thresholds: list[int]) -> None:
    from ptdm_spark.config import load_config

    p = load_config().dedupe.phash
    rows = []
    photos = _photos(cache)
    for pid, img in enumerate(photos):
        for name, v in transforms(img).items():
            rows.append((pid, name, *_hashes(v)))
    print(f"{len(photos)} photos x {len(rows) // len(photos)} versions = {len(rows)} images; "
          f"{sum(1 for a, b in itertools.combinations(rows, 2) if a[0] == b[0])} positive pairs, "
          f"{sum(1 for a, b in itertools.combinations(rows, 2) if a[0] != b[0])} negative pairs")
    print("| rule (pHash bits) | direct recall | direct precision | component recall | component precision "
          "| misses (component) |")
    print("|---|---|---|---|---|---|")
    def by_threshold(t):
        return lambda a, b: hashing.hamming(a[2], b[2]) <= t

    def default_rule(a, b):  # the dedupe job's rule (conf/base.yaml dedupe.phash)
        d = hashing.hamming(a[2], b[2])
        return d <= p.confirm_above or (d <= p.max_distance and hashing.hamming(a[3], b[3]) <= p.dhash_max_distance)

    rules = [(str(t), by_threshold(t)) for t in thresholds]
    rules.append((f"default: <= {p.confirm_above}, or <= {p.max_distance} with dHash <= {p.dhash_max_distance}",
                  default_rule))
    for label, near in rules:
        comp = _components(rows, near)
        tp = fp = fn = ctp = cfp = cfn = 0
        missed: dict[str, int] = {}
        for (i, a), (j, b) in itertools.combinations(enumerate(rows), 2):
            same = a[0] == b[0]
            direct = near(a, b)
            joined = comp[i] == comp[j]
            tp += same and direct
            fp += direct and not same
            fn += same and not direct
            ctp += same and joined
            cfp += joined and not same
            cfn += same and not joined
            if same and not joined:
                for n in {a[1], b[1]} - {"original"}:
                    missed[n] = missed.get(n, 0) + 1
        worst = ", ".join(f"{k} {v}" for k, v in sorted(missed.items(), key=lambda kv: -kv[1])[:3]) or "-"
        print(f"| {label} | {tp / (tp + fn):.3f} | {tp / max(1, tp + fp):.4f} | {ctp / (ctp + cfn):.3f} | "
              f"{ctp / max(1, ctp + cfp):.4f} | {worst} |")


def _planted(n: int, t: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(-(1 << 63), (1 << 63) - 1, n - n // 10, dtype=np.int64)
    src = base[rng.integers(0, len(base), n // 10)].view(np.uint64).copy()
    for i in range(len(src)):
        for bit in rng.choice(64, int(rng.integers(1, t + 1)), replace=False):
            src[i] ^= np.uint64(1) << np.uint64(bit)
    return np.unique(np.concatenate([base, src.view(np.int64)]))


def scale(n: int, t: int, blocks: int, sample: int) -> None:
    from ptdm_spark.config import load_config
    from ptdm_spark.session import get_session
    from ptdm_spark.transforms.dedupe import near_pairs

    hashes = _planted(n, t)
    tmp = tempfile.mkdtemp(prefix="ptdm-neardup-")
    cfg = load_config("local", (), [f"lakehouse.root={tmp}/lakehouse", "spark.driver_memory=6g", "spark.progress=false",
                                    "spark.log_level=ERROR"])
    spark = get_session(cfg.spark, cfg.lakehouse)
    import pandas as pd

    pd.DataFrame({"phash": hashes, "is_new": True}).to_parquet(f"{tmp}/hashes.parquet")
    df = spark.read.parquet(f"{tmp}/hashes.parquet")
    masks = hashing.band_masks(t, blocks)
    parts = max(4, -(-len(hashes) * len(masks) // 2_000_000))
    start = time.monotonic()
    near_pairs(df, masks, t, parts, "bench", all_new=True).write.mode("overwrite").parquet(f"{tmp}/pairs")
    took = time.monotonic() - start
    pairs = spark.read.parquet(f"{tmp}/pairs").toPandas()
    found = set(zip(pairs["a"].tolist(), pairs["b"].tolist()))

    rng = np.random.default_rng(1)
    u = hashes.view(np.uint64)
    want = set()
    for i in rng.choice(len(hashes), min(sample, len(hashes)), replace=False):
        d = np.bitwise_count(u ^ u[i])
        for j in np.flatnonzero(d <= t):
            if j != i:
                a, b = int(hashes[i]), int(hashes[j])
                want.add((min(a, b), max(a, b)))
    recall = len(want & found) / max(1, len(want))
    peak = _jvm_peak_mb(spark)
    print(f"| {len(hashes):,} | {t} | {blocks} | {len(masks)} | {hashing.expected_comparisons(len(hashes), t, blocks):.2e} "
          f"| {len(found):,} | {took:.0f} s | {recall:.3f} ({len(want)} pairs) | {peak} |")
    spark.stop()


def _jvm_peak_mb(spark) -> str:
    """Peak heap of the driver JVM (local mode: it runs the tasks too)."""
    try:
        jvm = spark.sparkContext._jvm
        pools = jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
        peak = sum(p.getPeakUsage().getUsed() for p in pools if str(p.getType()) == "Heap memory")
        return f"{peak / 2**20:.0f} MB"
    except Exception:  # a report detail, never worth failing the benchmark for
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--thresholds", default="4,6,8,10,12,14")
    q.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ptdm-bench-cache")
    s = sub.add_parser("scale")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--threshold", type=int, default=12)
    s.add_argument("--blocks", type=int, default=14)
    s.add_argument("--sample", type=int, default=2000)
    a = p.parse_args(argv)
    if a.what == "quality":
        quality(a.cache, [int(x) for x in a.thresholds.split(",")])
    else:
        print("| hashes | threshold | blocks | keys per hash | comparisons (model) | pairs found | time "
              "| recall vs brute force | driver heap peak |")
        print("|---|---|---|---|---|---|---|---|---|")
        scale(a.n, a.threshold, a.blocks, a.sample)
    return 0


if __name__ == "__main__":
    sys.exit(main())
