"""Augmentation throughput: ``ptdm augment`` against a one-process loop doing the same ops.

One invocation, same images, same recipe, same seed: N Fashion-MNIST images are written as PNG
files (``benchmarks.prepare``) and put through ``ptdm run`` into a fresh lakehouse (not timed);
then, back to back:

* **baseline**: one Python process (one OpenCV thread) reading the train split's image bytes and
  making K copies of each with :func:`ptdm_spark.imaging.augment.augment`, written to Parquet;
* **pipeline**: ``ptdm augment --recipe RECIPE --copies K`` as a new process in local mode (both
  cores), Spark's start-up included; the augment step's own time is read from its progress line.

Prints copies per second of each and the ratios.

    python -m benchmarks.augment_bench --n 5000 --copies 2 [--recipe basic] [--master local[2]]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PTDM = [sys.executable, "-m", "ptdm_spark.cli"]


def _ptdm(*args: str) -> tuple[float, str]:
    t = time.monotonic()
    proc = subprocess.run([*PTDM, *args], capture_output=True, text=True, cwd=ROOT)
    took = time.monotonic() - t
    if proc.returncode:
        sys.exit(f"ptdm {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return took, proc.stdout + proc.stderr


def _train_images(lakehouse: Path, dataset: str) -> list[tuple[str, bytes]]:
    """The train split's (image_id, bytes), read with Spark in a child process (not timed)."""
    code = (
        "import sys, pickle; from ptdm_spark.config import load_config; from ptdm_spark.session import get_session;"
        "c = load_config('local', (), [f'lakehouse.root={sys.argv[1]}', 'spark.log_level=ERROR']);"
        "s = get_session(c.spark, c.lakehouse);"
        "rows = s.read.format('delta').load(c.lakehouse.table_path(sys.argv[2], 'curated'))"
        ".filter(\"split = 'train'\").select('image_id', 'image').collect();"
        "sys.stdout.buffer.write(pickle.dumps([(r[0], bytes(r[1])) for r in rows]))"
    )
    import pickle

    proc = subprocess.run([sys.executable, "-c", code, str(lakehouse), dataset], capture_output=True, cwd=ROOT,
                          check=True)
    return pickle.loads(proc.stdout)


def baseline(images: list[tuple[str, bytes]], recipe_text: str, seed: int, copies: int, out: Path) -> dict:
    """The loop, in this process (one OpenCV thread, as each Spark worker has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ptdm_spark.imaging import augment as A
    from ptdm_spark.imaging.cv import cv2

    cv2.setNumThreads(1)
    recipe = A.Recipe.from_yaml(recipe_text)
    t = time.monotonic()
    rows = []
    for image_id, data in images:
        for c in range(copies):
            a = A.augment(data, recipe, seed, image_id, c)
            rows.append({"image_id": A.image_id(a.image), "source_id": image_id, "copy": c, "params": a.params,
                         "image": a.image, "encoding": a.encoding})
    pq.write_table(pa.Table.from_pylist(rows), out)
    return {"copies": len(rows), "seconds": time.monotonic() - t}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="Fashion-MNIST images to prepare (default 5000)")
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--recipe", default="basic")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--lakehouse", default=None,
                    help="reuse this lakehouse's 'fashion' dataset (for example export_bench's) instead of preparing one")
    a = ap.parse_args(argv)

    from benchmarks.prepare import fashion
    from ptdm_spark.imaging.augment import Recipe
    from ptdm_spark.pipeline.augment import recipe_text

    work = Path(a.work or tempfile.mkdtemp(prefix="ptdm-augbench-"))
    work.mkdir(parents=True, exist_ok=True)
    data, lakehouse = work / "fashion-png", Path(a.lakehouse or work / "lakehouse").resolve()
    common = ["--dataset", "fashion", "--set", f"lakehouse.root={lakehouse}", "--master", a.master]
    if a.lakehouse is None:
        if not data.exists():
            fashion(a.n, data)
        took, _ = _ptdm("run", str(data), *common)
        print(f"prepared: {a.n} Fashion-MNIST PNGs through ptdm run in {took:.0f}s (not counted)", flush=True)

    text, _ = recipe_text(None, a.recipe)
    recipe = Recipe.from_yaml(text)
    images = _train_images(lakehouse, "fashion")
    base = baseline(images, text, recipe.seed, a.copies, work / "baseline.parquet")

    took, log = _ptdm("augment", "--recipe", a.recipe, "--copies", str(a.copies), *common)
    made = int(re.search(r"augment: (\d+) cop", log).group(1))
    step = re.search(r"\[augment\] made and wrote .*?\(([\d.]+)s", log)
    step_s = float(step.group(1)) if step else float("nan")
    res = {
        "images": a.n if a.lakehouse is None else None, "train_images": len(images), "copies_per_image": a.copies,
        "recipe": recipe.name,
        "baseline_copies": base["copies"], "baseline_seconds": round(base["seconds"], 2),
        "baseline_per_s": round(base["copies"] / base["seconds"], 1),
        "ptdm_copies": made, "ptdm_command_seconds": round(took, 2), "ptdm_command_per_s": round(made / took, 1),
        "ptdm_step_seconds": step_s, "ptdm_step_per_s": round(made / step_s, 1) if step_s == step_s else None,
    }
    res["ratio_command"] = round(res["ptdm_command_per_s"] / res["baseline_per_s"], 2)
    if res["ptdm_step_per_s"]:
        res["ratio_step"] = round(res["ptdm_step_per_s"] / res["baseline_per_s"], 2)
    print(f"baseline loop (1 process): {base['copies']} copies in {base['seconds']:.1f}s = "
          f"{res['baseline_per_s']:,.0f} copies/s")
    print(f"ptdm augment ({a.master}, whole command incl. Spark start-up): {made} copies in {took:.1f}s = "
          f"{res['ptdm_command_per_s']:,.0f} copies/s ({res['ratio_command']}x the loop)")
    print(f"ptdm augment, the augment step alone: {step_s:.1f}s = {res['ptdm_step_per_s']} copies/s "
          f"({res.get('ratio_step')}x the loop)")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
