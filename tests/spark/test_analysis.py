"""ptdm analyze on small datasets made here, against truths computed here: numpy's channel means
and correlations, the curated table's counts, a planted outlier, planted problems that must lower
the scorecard, and the report in a real browser."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.imagefiles import encode

pytestmark = pytest.mark.spark

RNG = np.random.default_rng(7)


def bright(i: int) -> np.ndarray:
    """A bright, noisy gradient (brightness ~0.75)."""
    yy, xx = np.mgrid[0:40, 0:48]
    base = 180 + 2 * i + (xx * 0.6) - 14
    img = np.stack([base, base - 10 + yy * 0.3, base - 20], axis=2) + RNG.normal(0, 6, (40, 48, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def dark() -> np.ndarray:
    img = bright(0).astype(np.int32) - 150
    return np.clip(img, 0, 255).astype(np.uint8)


def gradient(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:36, 0:36]
    img = np.stack([xx * 7, yy * 7, (xx + yy + 9 * i) * 3 % 256], axis=2) + RNG.normal(0, 4, (36, 36, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def clean_files() -> tuple[dict[str, bytes], dict[str, np.ndarray]]:
    files, arrays = {}, {}
    for i in range(12):
        a = bright(i)
        files[f"bright/b{i}.png"] = encode(a)
        arrays[f"bright/b{i}.png"] = a
    for i in range(10):
        a = gradient(i)
        files[f"grad/g{i}.png"] = encode(a)
        arrays[f"grad/g{i}.png"] = a
    solid = np.zeros((32, 32, 3), np.uint8)
    solid[:] = (10, 200, 90)
    files["grad/solid.png"] = encode(solid)  # near_constant: flagged, excluded by default
    arrays["grad/solid.png"] = solid
    a = dark()
    files["bright/dark.png"] = encode(a)  # the planted outlier within its label
    arrays["bright/dark.png"] = a
    return files, arrays


def planted_files() -> dict[str, bytes]:
    """The clean files plus: label conflicts (same pixels under another label), one content under
    two labels, rejects, and (set afterwards) stale modification times."""
    files, _ = clean_files()
    files = dict(files)
    for i in range(3):  # one array (a call draws new noise), two encodings, two labels: 3 conflicts
        a = gradient(50 + i)
        files[f"grad/conflict{i}.bmp"] = encode(a, ".bmp")
        files[f"bright/conflict{i}.png"] = encode(a)
    twin = encode(gradient(60))  # one content (the same bytes) under two labels
    files["grad/twin.png"] = files["bright/twin.png"] = twin
    files["bright/trunc.png"] = encode(bright(50))[:200]
    files["grad/notes.png"] = b"this is not an image"
    files["grad/empty.png"] = b""
    return files


def run(ptdm, *args):
    status, out = ptdm(*args)
    assert status == 0, out
    return out


def table(spark, cfg, dataset, name):
    return spark.read.format("delta").load(cfg.lakehouse.table_path(dataset, name))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, spark, cfg):
    folder = tmp_path_factory.mktemp("ana-clean")
    files, arrays = clean_files()
    write(folder, files)
    return folder, "ana_clean", arrays, files


@pytest.fixture(scope="module")
def planted(tmp_path_factory, spark, cfg):
    folder = tmp_path_factory.mktemp("ana-planted")
    write(folder, planted_files())
    old = 946684800  # 2000-01-01: older than analysis.freshness_days
    for p in sorted(folder.rglob("*"))[::2]:
        if p.is_file():
            os.utime(p, (old, old))
    return folder, "ana_planted"


@pytest.fixture(scope="module")
def analysed_clean(clean, spark, cfg, tmp_path_factory):
    folder, dataset, arrays, files = clean
    _run_pipeline(cfg, folder, dataset)
    out_dir = tmp_path_factory.mktemp("report-clean")
    from ptdm_spark.cli import main
    from ptdm_spark.io import delta

    # Which tables analyze read as their versions' Parquet files, and each table's version in its
    # own log right after (the later tests here add versions).
    real = delta.read_natively

    def observed(spark_, path, version):
        df = real(spark_, path, version)
        NATIVE_READS[path.rstrip("/").rsplit("/", 1)[-1]] = (version, df is not None)
        return df

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(delta, "read_natively", observed)
        status = main(["analyze", "--dataset", dataset, "--out", str(out_dir), *_sets(cfg)])
    assert status == 0
    for name in NATIVE_READS:
        log = Path(delta.local_table_path(cfg.lakehouse.table_path(dataset, name))) / "_delta_log"
        LOG_VERSIONS[name] = max(int(p.stem) for p in log.glob("*.json"))
    return dataset, arrays, files, out_dir


NATIVE_READS: dict[str, tuple[int, bool]] = {}  # table -> (version read, read as Parquet files)
LOG_VERSIONS: dict[str, int] = {}


@pytest.fixture(scope="module")
def analysed_planted(planted, spark, cfg):
    """The planted dataset built and analysed by one command: ``ptdm run --analyze``."""
    folder, dataset = planted
    _run_pipeline(cfg, folder, dataset, args=("--analyze",))
    return dataset


def _sets(cfg, extra=()):
    from tests.conftest import overrides_for

    return [a for o in (*overrides_for(Path(cfg.lakehouse.root)), *extra) for a in ("--set", o)]


def _run_pipeline(cfg, folder, dataset, extra=(), args=()):
    from ptdm_spark.cli import main

    assert main(["run", str(folder), "--dataset", dataset, *args, *_sets(cfg, extra)]) == 0


def _stats(spark, cfg, dataset, version=None):
    df = table(spark, cfg, dataset, "stats")
    if version is not None:
        df = df.filter(f"curated_version = {version}")
    return {(r.scope, r.key, r.metric): r.value for r in df.collect()}


# --- known answers -----------------------------------------------------------------------------


def _curated_pixels(spark, cfg, dataset, arrays, files) -> tuple[set[str], dict[str, np.ndarray], np.ndarray]:
    """The curated ids, the arrays written here by id, and every curated pixel as RGB in 0..1."""
    curated = {r.image_id for r in table(spark, cfg, dataset, "curated").select("image_id").collect()}
    by_id = {hashlib.sha256(files[rel]).hexdigest(): a for rel, a in arrays.items()}
    assert curated <= set(by_id)
    return curated, by_id, np.concatenate([by_id[i].reshape(-1, 3).astype(np.float64) / 255 for i in sorted(curated)])


def test_channel_means_and_stds_equal_numpys(spark, cfg, analysed_clean):
    dataset, arrays, files, _ = analysed_clean
    curated, by_id, px = _curated_pixels(spark, cfg, dataset, arrays, files)
    st = _stats(spark, cfg, dataset)
    for k, c in enumerate("RGB"):
        assert abs(st[("dataset", "all", f"channel_mean_{c}")] - px[:, k].mean()) < 1e-6
        assert abs(st[("dataset", "all", f"channel_std_{c}")] - px[:, k].std()) < 1e-6
    # and per label
    grad = np.concatenate([by_id[i].reshape(-1, 3).astype(np.float64) / 255 for i in sorted(curated)
                           if any(by_id[i] is arrays[r] for r in arrays if r.startswith("grad/"))])
    assert abs(st[("label", "grad", "channel_mean_G")] - grad[:, 1].mean()) < 1e-6
    assert abs(st[("label", "grad", "channel_std_B")] - grad[:, 2].std()) < 1e-6


def test_label_and_split_counts_equal_the_curated_tables(spark, cfg, analysed_clean):
    dataset = analysed_clean[0]
    cur = table(spark, cfg, dataset, "curated").collect()
    st = _stats(spark, cfg, dataset)
    labels, splits, both = {}, {}, {}
    for r in cur:
        labels[r.label] = labels.get(r.label, 0) + 1
        splits[r.split] = splits.get(r.split, 0) + 1
        both[f"{r.label}/{r.split}"] = both.get(f"{r.label}/{r.split}", 0) + 1
    assert {k: int(v) for (s, k, m), v in st.items() if s == "label" and m == "count"} == labels
    assert {k: int(v) for (s, k, m), v in st.items() if s == "split" and m == "count"} == splits
    assert {k: int(v) for (s, k, m), v in st.items() if s == "label_split" and m == "count"} == both
    assert st[("dataset", "all", "count")] == len(cur)
    widths = sorted(r.width for r in cur)
    assert st[("dataset", "all", "width_min")] == widths[0] and st[("dataset", "all", "width_max")] == widths[-1]


def test_the_analysis_tables_are_written_in_the_driver_and_read_by_spark(spark, cfg, analysed_clean):
    """A local, unencrypted lakehouse: analyze writes its four tables with deltalake (no Spark job,
    test_encryption covers Spark's path); each newest commit is deltalake's, stamped with an
    analyze run, and Spark reads its rows (the known-answer tests here read them too)."""

    from ptdm_spark.io.delta import local_table_path

    dataset = analysed_clean[0]
    for name in ("stats", "correlations", "outliers", "scorecard"):
        log = Path(local_table_path(cfg.lakehouse.table_path(dataset, name))) / "_delta_log"
        newest = max(log.glob("*.json"), key=lambda p: int(p.stem))
        info = next(json.loads(ln)["commitInfo"] for ln in newest.read_text().splitlines() if '"commitInfo"' in ln)
        assert info.get("engineInfo", "").startswith("delta-rs"), (name, info)
        assert "-analyze-" in json.loads(info["userMetadata"])["run_id"], (name, info)
        assert table(spark, cfg, dataset, name).count() > 0
    # Its seven inputs were read as the Parquet files of their versions (read_natively), each at
    # its newest version as the fixture found it in the table's own log, and the runs row names
    # those versions.
    inputs = ("images", "raw_images", "rejects", "duplicates", "label_conflicts", "leakage", "curated")
    assert sorted(NATIVE_READS) == sorted(inputs)
    assert NATIVE_READS == {name: (LOG_VERSIONS[name], True) for name in inputs}
    analyzed = (table(spark, cfg, dataset, "runs").filter("job = 'analyze' AND status = 'succeeded'")
                .orderBy("started_at").collect()[0])
    assert {name: analyzed.input_versions[name] for name in inputs} == LOG_VERSIONS
    cards = {r.dimension: r for r in table(spark, cfg, dataset, "scorecard").collect()}
    assert set(cards) == {"accuracy", "completeness", "consistency", "reliability", "timeliness"}
    assert all(isinstance(v, float) for v in cards["completeness"].inputs.values()) and cards["completeness"].inputs


def test_the_planted_dark_image_is_the_only_outlier_of_its_label(spark, cfg, analysed_clean):
    dataset, _, files, _ = analysed_clean
    dark_id = hashlib.sha256(files["bright/dark.png"]).hexdigest()
    rows = table(spark, cfg, dataset, "outliers").filter("score = 'brightness'").collect()
    assert {r.image_id for r in rows if r.label == "bright"} == {dark_id}
    r = next(r for r in rows if r.image_id == dark_id)
    assert r.robust_z < -3.5 and r.value < r.median


def test_correlations_are_numpys(spark, cfg, analysed_clean):
    dataset = analysed_clean[0]
    imgs = table(spark, cfg, dataset, "images").join(
        table(spark, cfg, dataset, "curated").select("image_id"), "image_id").select("width", "brightness").collect()
    x = np.array([[r.width, r.brightness] for r in imgs], np.float64)
    want = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
    got = table(spark, cfg, dataset, "correlations").filter(
        "method = 'pearson' AND ((a = 'brightness' AND b = 'width') OR (a = 'width' AND b = 'brightness'))").first()
    assert abs(got.value - want) < 1e-9
    # Spearman: Pearson of the ranks, ties at their average rank (pandas' rank, independent of Spark)
    import pandas as pd

    ranks = pd.DataFrame(x).rank(method="average").to_numpy()
    want = np.corrcoef(ranks[:, 0], ranks[:, 1])[0, 1]
    got = table(spark, cfg, dataset, "correlations").filter(
        "method = 'spearman' AND ((a = 'brightness' AND b = 'width') OR (a = 'width' AND b = 'brightness'))").first()
    assert abs(got.value - want) < 1e-9
    # The two ways of ranking (in place up to WIDE_RANKS_MAX_ROWS rows, a long frame beyond) agree.
    from ptdm_spark.analysis import stats as s_mod

    frame = s_mod.analysed(table(spark, cfg, dataset, "curated"), table(spark, cfg, dataset, "images"),
                           table(spark, cfg, dataset, "raw_images"))
    wide, long = s_mod.correlations(frame), s_mod.correlations(frame, wide_ranks_max_rows=0)
    assert [r[:3] for r in wide] == [r[:3] for r in long] and any(r[0] == "spearman" for r in wide)
    assert all((x[3] is None and y[3] is None) or abs(x[3] - y[3]) < 1e-12 for x, y in zip(wide, long))
    assert [r[3] for r in wide if r[0] == "spearman" and {r[1], r[2]} == {"brightness", "width"}] == [
        pytest.approx(want, abs=1e-9)]
    # Nothing to correlate (no curated image; a column NULL everywhere): no rows, no error.
    from pyspark.sql import functions as F

    assert s_mod.correlations(frame.limit(0)) == []
    assert s_mod.correlations(frame.limit(0), centre={c: None for c in s_mod.CORRELATED}) == []
    assert s_mod.correlations(frame.withColumn("blur", F.lit(None).cast("double"))) == []


# --- the scorecard ------------------------------------------------------------------------------


def test_scorecard_dimensions_drop_where_problems_are_planted(spark, cfg, analysed_clean, analysed_planted):
    def card(ds):
        return {r.dimension: r for r in table(spark, cfg, ds, "scorecard").collect()}

    clean, planted = card(analysed_clean[0]), card(analysed_planted)
    assert set(clean) == {"accuracy", "completeness", "consistency", "reliability", "timeliness"}
    for d in clean.values():
        assert 0.0 <= d.score <= 1.0 and d.formula
    assert clean["reliability"].score == 1.0 and clean["timeliness"].score > 0.99
    assert planted["accuracy"].score < clean["accuracy"].score  # label conflicts
    assert planted["accuracy"].inputs["conflict_images"] >= 3
    assert planted["completeness"].score < clean["completeness"].score  # rejects: fewer usable objects
    assert planted["consistency"].score < clean["consistency"].score  # one content under two labels
    assert planted["reliability"].score < clean["reliability"].score  # rejects
    assert planted["reliability"].inputs["rejected_objects"] == 3
    assert planted["timeliness"].score < clean["timeliness"].score  # stale files
    assert "bright" in planted["reliability"].detail or "grad" in planted["reliability"].detail


def test_run_with_analyze_analyses_the_curated_version_it_wrote(spark, cfg, analysed_planted):
    """``ptdm run --analyze``: after curate, an ``analyze`` job of the curated version that curate
    just committed (read from the table's own history), its report in the default folder."""
    dataset = analysed_planted
    path = cfg.lakehouse.table_path(dataset, "curated")
    version = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").agg({"version": "max"}).first()[0]
    runs = {r.job: r for r in table(spark, cfg, dataset, "runs").collect()}
    assert {"ingest", "process", "dedupe", "curate", "analyze"} <= set(runs)
    assert runs["analyze"].status == "succeeded" and runs["analyze"].input_versions["curated"] == version
    assert runs["analyze"].started_at >= runs["curate"].finished_at
    st = _stats(spark, cfg, dataset, version)
    assert st[("dataset", "all", "count")] == table(spark, cfg, dataset, "curated").count()
    report = Path(cfg.lakehouse.root) / dataset / "_reports" / f"curated-v{version}" / "report.html"
    assert report.is_file() and b"<html" in report.read_bytes()[:200].lower()


# --- the report ---------------------------------------------------------------------------------


def test_report_is_self_contained_and_renders_in_a_browser(analysed_clean, tmp_path):
    _, _, _, out_dir = analysed_clean
    page = (out_dir / "report.html").read_text()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, re.I)
    assert refs and all(r.startswith("data:image/png;base64,") for r in refs)
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*https?:", page, re.I)
    for name in ("funnel", "classes", "scorecard", "score_brightness", "correlation_spearman", "hist_width"):
        assert (out_dir / f"{name}.png").stat().st_size > 1000
    assert "outliers" in page.lower() and "flag: near_constant" in page
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is needed (scripts/setup.sh installs Debian's chromium)"
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,2400", f"file://{out_dir}/report.html"],
                   capture_output=True, timeout=120, check=False)
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), np.float64)
    assert img.shape == (2400, 1200)
    assert img.std() > 20  # not blank: text, plots and thumbnails
    assert (img < 128).mean() > 0.01


# --- what-if and older versions (these change ana_clean's curated: keep them last) ----------------


def _previewed(ptdm, dataset, *sets):

    status, out = ptdm("preview", "--dataset", dataset, "--format", "json", *sets)
    assert status == 0, out
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    after = {r["label"]: r["after"] for r in rows if r["kind"] == "label" and r["after"]}
    return after, {r["rule"]: (r["removed"], r["added"]) for r in rows if r["kind"] == "rule"}


def _curated_by_label(spark, cfg, dataset):
    from collections import Counter

    return dict(Counter(r.label for r in table(spark, cfg, dataset, "curated").select("label").collect()))


def test_preview_counts_equal_a_real_rerun(spark, cfg, ptdm, clean, analysed_clean):
    folder, dataset = clean[0], analysed_clean[0]
    # the files written here: 13 bright (one of them dark.png, brightness ~0.12) and 10 gradients
    # (~0.48) are curated; grad/solid.png is near_constant, excluded by default
    assert _curated_by_label(spark, cfg, dataset) == {"bright": 13, "grad": 10}

    # a threshold that flags dark.png, and that flag excluded: it applies to a dataset processed
    # afresh with these settings, which the test then does
    changes = ("process.quality.dark_max=0.3", "curate.exclude_flags=[near_constant,dark]")
    after, rules = _previewed(ptdm, dataset, *(a for c in changes for a in ("--set", c)))
    assert after == {"bright": 12, "grad": 10} and rules == {"dark": (1, 0)}
    _run_pipeline(cfg, folder, "ana_preview", changes)
    assert _curated_by_label(spark, cfg, "ana_preview") == after

    # no flag excluded: the solid image comes back, and ptdm curate does the same
    after, rules = _previewed(ptdm, dataset, "--set", "curate.exclude_flags=[]")
    assert after == {"bright": 13, "grad": 11} and rules == {"near_constant": (0, 1)}
    run(ptdm, "curate", "--dataset", dataset, "--set", "curate.exclude_flags=[]")
    assert _curated_by_label(spark, cfg, dataset) == after


def test_analyze_an_older_version(spark, cfg, ptdm, analysed_clean):
    """After the curate above, analyze --version N reads curated as it was at N (Delta time travel)."""
    dataset = analysed_clean[0]
    versions = sorted({r.curated_version for r in table(spark, cfg, dataset, "stats").select("curated_version")
                       .distinct().collect()})
    old = versions[-1]
    before = _stats(spark, cfg, dataset, old)
    rows = {v: table(spark, cfg, dataset, "stats").filter(f"curated_version = {v}").count() for v in versions}
    assert table(spark, cfg, dataset, "curated").count() == 24  # today's: the solid image is back
    status, out = ptdm("analyze", "--dataset", dataset, "--version", str(old), "--out", str(analysed_clean[3]))
    assert status == 0, out
    # Its rows replaced, not added to (deltalake's replaceWhere into the existing table, no
    # fallback to Spark); every other version's rows as they were.
    assert "written with Spark instead" not in out
    assert {v: table(spark, cfg, dataset, "stats").filter(f"curated_version = {v}").count()
            for v in versions} == rows
    again = _stats(spark, cfg, dataset, old)
    assert again[("dataset", "all", "count")] == 23  # 13 bright + 10 gradients, as the files written here
    assert again == pytest.approx(before)
    status, out = ptdm("analyze", "--dataset", dataset, "--version", "999")
    assert status == 2 and "999" in out


def test_images_processed_before_their_sums_were_stored_are_decoded(spark, cfg, ptdm, analysed_clean):
    """Rows of ``images`` written before ``pixel_sums`` existed hold NULL there: analyze decodes
    those curated images (and only those) and the channel means and stds still equal numpy's."""
    dataset, arrays, files, out_dir = analysed_clean
    path = cfg.lakehouse.table_path(dataset, "images")
    spark.sql(f"UPDATE delta.`{path}` SET pixel_sums = NULL WHERE image_id < '8'")
    nulls = table(spark, cfg, dataset, "images").filter("pixel_sums IS NULL").count()
    assert 0 < nulls < table(spark, cfg, dataset, "images").count()
    curated, _, px = _curated_pixels(spark, cfg, dataset, arrays, files)
    status, out = ptdm("analyze", "--dataset", dataset, "--out", str(out_dir))
    assert status == 0, out
    version = max(r.curated_version for r in table(spark, cfg, dataset, "stats").select("curated_version").collect())
    st = _stats(spark, cfg, dataset, version)
    assert st[("dataset", "all", "count")] == len(curated)
    for k, c in enumerate("RGB"):
        assert abs(st[("dataset", "all", f"channel_mean_{c}")] - px[:, k].mean()) < 1e-6
        assert abs(st[("dataset", "all", f"channel_std_{c}")] - px[:, k].std()) < 1e-6
