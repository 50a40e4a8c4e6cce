"""Make the benchmark inputs from real images available on this machine (nothing downloaded
from the web): Fashion-MNIST written out as small PNG files in class folders, and photo JPEGs
around 512 pixels cut from the photos bundled in the scikit-image wheel (PyPI) and Debian's
gnome-backgrounds wallpapers.

    python -m benchmarks.prepare fashion --n 70000 --out benchmarks/out/data/fashion-png
    python -m benchmarks.prepare photos --n 3000 --out benchmarks/out/data/photos-jpeg
"""

from __future__ import annotations

import argparse
import glob
import gzip
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ptdm_spark.imaging.cv import cv2
from ptdm_spark.io.arrays import parse_idx

FASHION = "/usr/share/datasets/fashion-mnist"
FASHION_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
SKIMAGE_WHEEL = "scikit-image==0.26.0"


def fashion(n: int, out: Path) -> int:
    """Write ``n`` Fashion-MNIST images (train, then test) as PNG files. Past 70,000, the set
    repeats with one pixel changed per round, so that every file stays a distinct image."""
    written = 0
    sets = []
    for prefix in ("train", "t10k"):
        imgs = parse_idx(gzip.open(f"{FASHION}/{prefix}-images-idx3-ubyte.gz").read())
        labels = parse_idx(gzip.open(f"{FASHION}/{prefix}-labels-idx1-ubyte.gz").read())
        sets.append((prefix, imgs, labels))
    for rnd in range(n // 70000 + 1):
        for prefix, imgs, labels in sets:
            for i in range(len(imgs)):
                if written >= n:
                    return written
                d = out / FASHION_NAMES[int(labels[i])]
                d.mkdir(parents=True, exist_ok=True)
                img = imgs[i]
                if rnd:
                    img = img.copy()
                    img[0, 0] = (int(img[0, 0]) + rnd) % 256
                ok, buf = cv2.imencode(".png", img)
                suffix = f"-r{rnd}" if rnd else ""
                (d / f"{prefix}-{i:05d}{suffix}.png").write_bytes(buf.tobytes())
                written += 1
    return written


def source_photos(cache: Path) -> list[np.ndarray]:
    """The colour photos of the scikit-image wheel and the gnome-backgrounds wallpapers."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = glob.glob(str(cache / "scikit_image-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", SKIMAGE_WHEEL, "-d", str(cache)],
                       check=True)
        wheels = glob.glob(str(cache / "scikit_image-*.whl"))
    photos = []
    with zipfile.ZipFile(wheels[0]) as z:
        for name in sorted(z.namelist()):
            if name.startswith("skimage/data/") and name.endswith((".png", ".jpg")):
                img = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_COLOR)
                if img is not None and min(img.shape[:2]) >= 256 and img[..., 0].std() > 1:
                    photos.append(img)
    for path in sorted(glob.glob("/usr/share/backgrounds/gnome/*.webp") + glob.glob("/usr/share/backgrounds/gnome/*.jpg")):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is not None:
            photos.append(img)
    return photos


def photos(n: int, out: Path, cache: Path, side: int = 512, seed: int = 0) -> int:
    """``n`` JPEGs (quality 90) of random crops of the source photos, long side ``side``."""
    rng = np.random.default_rng(seed)
    srcs = source_photos(cache)
    if not srcs:
        raise SystemExit("no source photos found")
    for k in range(n):
        img = srcs[k % len(srcs)]
        h, w = img.shape[:2]
        frac = rng.uniform(0.4, 1.0)
        ch, cw = max(64, int(h * frac)), max(64, int(w * frac * rng.uniform(0.7, 1.3)))
        ch, cw = min(ch, h), min(cw, w)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y : y + ch, x : x + cw]
        scale = side / max(ch, cw)
        crop = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=cv2.INTER_AREA)
        d = out / f"src{k % len(srcs):02d}"
        d.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        (d / f"{k:06d}.jpg").write_bytes(buf.tobytes())
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("fashion", "photos"))
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ptdm-bench-cache")
    a = p.parse_args(argv)
    if a.out.exists() and any(a.out.rglob("*.*")):
        print(f"prepare: {a.out} exists, reusing it", file=sys.stderr)
        return 0
    a.out.mkdir(parents=True, exist_ok=True)
    n = fashion(a.n, a.out) if a.kind == "fashion" else photos(a.n, a.out, a.cache)
    print(f"prepare: wrote {n} {a.kind} images to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
