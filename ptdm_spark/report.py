"""What the jobs print: each stage's accounting, and the whole dataset's (does it add up?)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from ptdm_spark.config import Config


def _out(line: str = "") -> None:
    print(line, flush=True)


def _reasons(reasons: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"


def ingest_summary(c: Mapping[str, Any], reasons: Mapping[str, int]) -> None:
    _out(f"ingest: {c.get('listed', 0)} entries listed under the sources"
         f"{' (every one accounted for)' if not c.get('unaccounted') else ' (' + str(c['unaccounted']) + ' NOT accounted for)'}; "
         f"{c['objects']} objects in; {c['accepted']} readable ({c['inserted']} new, "
         f"{c['accepted'] - c['inserted']} already ingested; {c['distinct_ids']} distinct contents); "
         f"{c['rejected']} rejected ({_reasons(reasons)})")


def manifest_summary(m: Any, differ: int) -> None:
    """How the manifest met the files: matched, unmatched, conflicting rows; unlabelled files."""
    _out(f"manifest: {m.rows} rows, {m.paths} paths: {m.matched} matched a file, {m.unmatched} matched none"
         + (f" (e.g. {', '.join(repr(x) for x in m.unmatched_examples)})" if m.unmatched else "")
         + f"; {m.conflicting} listed twice with different labels"
         + (f" (the smallest label taken: {', '.join(repr(x) for x in m.conflicting_examples)})" if m.conflicting else "")
         + f"; {m.unlabelled} of {m.objects} objects read have no manifest row (no label)")
    if differ:
        _out(f"manifest: {differ} file(s) already ingested carry another label than this manifest gives; ingest "
             "never rewrites stored rows, so their stored labels stand (query: SELECT source_uri, label FROM "
             "<dataset>.raw_images); to relabel, ingest into a new dataset")


def process_summary(c: Mapping[str, Any], reasons: Mapping[str, int]) -> None:
    _out(f"process: {c['pending']} new distinct images in; {c['images']} accepted; "
         f"{c['rejected']} rejected ({_reasons(reasons)})")


def dedupe_summary(c: Mapping[str, Any], by_method: Mapping[str, int]) -> None:
    near = ""
    if "hashes" in c:
        near = (f"; pHash search: {c['hashes_new']} new of {c['hashes']} distinct hashes, "
                f"{c.get('pairs_new', 0)} new near pair(s), {c.get('inner_pairs_new', 0)} new whole/inner "
                f"(crop) pair(s), {c.get('small_pairs_new', 0)} new small/larger pair(s) "
                f"({c.get('hashes_small', 0)} small image hash(es)); {c['pairs']} image pair(s) look alike")
    _out(f"dedupe: {c['images']} images; duplicates by method: {_reasons(by_method)}; "
         f"{c['groups']} duplicate groups (largest {c['largest_group']}); "
         f"{c['label_conflicts']} with conflicting labels (see label_conflicts){near}")


def curate_summary(c: Mapping[str, Any], splits: Mapping[str, int]) -> None:
    _out(f"curate: {c['curated']} curated images; splits: {_reasons(splits)}; "
         f"{c['split_assigned']} image(s) given a split this run; "
         f"{c['leaking']} outside train with a duplicate in train (see leakage)")


def accounting(spark: "SparkSession", cfg: "Config", dataset: str) -> dict[str, Any]:
    """The dataset's accounting over its current tables; prints it and whether it adds up.

    Contract (DESIGN.md): every distinct raw content hash is in ``images`` or a process reject;
    every image is curated, a duplicate, or excluded by a quality flag.
    """
    from pyspark.sql import functions as F

    def t(name: str):
        return spark.read.format("delta").load(cfg.lakehouse.table_path(dataset, name))

    raw, images, rejects = t("raw_images"), t("images"), t("rejects")
    dups, cur = t("duplicates"), t("curated")
    raw_ids = raw.select("image_id").distinct()
    proc_rej_ids = rejects.filter(F.col("stage") == "process").select("image_id").distinct()
    ingest_rej = {r["reason"]: r["count"] for r in rejects.filter(F.col("stage") == "ingest")
                  .groupBy("reason").count().collect()}
    proc_rej = {r["reason"]: r["count"] for r in rejects.filter(F.col("stage") == "process")
                .groupBy("reason").count().collect()}
    collect_rej = {r["reason"]: r["count"] for r in rejects.filter(F.col("stage") == "collect")
                   .groupBy("reason").count().collect()}
    n = {
        "raw_objects": raw.count(),
        "raw_distinct": raw_ids.count(),
        "images": images.count(),
        "process_rejects": proc_rej_ids.count(),
        "lost_raw": raw_ids.join(images.select("image_id"), "image_id", "left_anti")
        .join(proc_rej_ids, "image_id", "left_anti").count(),
        "duplicates": dups.select("image_id").distinct().count(),
        "curated": cur.count(),
    }
    # Objects `ptdm erase` removed: gone from every table, counted here (erasures.objects).
    er_path = cfg.lakehouse.table_path(dataset, "erasures")
    erased = {"objects": 0, "images": 0}
    from ptdm_spark.io import delta

    if delta.is_delta_table(spark, er_path):
        e = t("erasures").agg(F.sum("objects").alias("o"), F.count(F.lit(1)).alias("n"),
                              F.size(F.array_distinct(F.flatten(F.collect_list("image_ids")))).alias("i")).first()
        erased = {"objects": int(e["o"] or 0), "images": int(e["i"] or 0), "erasures": int(e["n"])}
    n["erased_objects"] = erased["objects"]
    dup_by = {r["method"]: r["count"] for r in dups.groupBy("method").count().collect()}
    excluded = (images.join(dups.select("image_id"), "image_id", "left_anti")
                .join(cur.select("image_id"), "image_id", "left_anti"))
    n["excluded"] = excluded.count()
    flags = {r["flag"]: r["count"] for r in excluded.select(F.explode("flags").alias("flag"))
             .groupBy("flag").count().collect()}
    splits = {r["split"]: r["count"] for r in cur.groupBy("split").count().collect()}
    ok_raw = n["lost_raw"] == 0 and n["raw_distinct"] == n["images"] + n["process_rejects"]
    ok_img = n["images"] == n["curated"] + n["duplicates"] + n["excluded"]

    _out()
    _out(f"accounting of dataset {dataset!r}")
    objects = n["raw_objects"] + sum(ingest_rej.values()) + sum(collect_rej.values()) + n["erased_objects"]
    _out(f"  source objects          {objects:>9}")
    if n["erased_objects"]:
        _out(f"    erased                {n['erased_objects']:>9}   ({erased['images']} image id(s) in "
             f"{erased['erasures']} erasure(s); see erasures)")
    if collect_rej:  # URLs ptdm collect could not fetch
        _out(f"    failed at collect     {sum(collect_rej.values()):>9}   ({_reasons(collect_rej)})")
    _out(f"    rejected at ingest    {sum(ingest_rej.values()):>9}   ({_reasons(ingest_rej)})")
    _out(f"    in raw_images         {n['raw_objects']:>9}   ({n['raw_distinct']} distinct contents; "
         f"{n['raw_objects'] - n['raw_distinct']} exact copies, sha256)")
    _out(f"  distinct contents       {n['raw_distinct']:>9}")
    _out(f"    rejected at process   {n['process_rejects']:>9}   ({_reasons(proc_rej)})")
    _out(f"    in images             {n['images']:>9}")
    _out(f"  images                  {n['images']:>9}")
    _out(f"    duplicates            {n['duplicates']:>9}   ({_reasons(dup_by)})")
    _out(f"    excluded by flags     {n['excluded']:>9}   ({_reasons(flags)})")
    _out(f"    curated               {n['curated']:>9}   ({_reasons(splits)})")
    verdict = "adds up" if ok_raw and ok_img else "DOES NOT ADD UP"
    _out(f"  accounting {verdict}")
    if not (ok_raw and ok_img):
        print(f"warning: accounting of {dataset} does not add up: {n}", file=sys.stderr)
    return {**n, "ok": ok_raw and ok_img, "ingest_rejects": ingest_rej, "collect_rejects": collect_rej,
            "process_rejects_by": proc_rej,
            "duplicates_by": dup_by, "excluded_by": flags, "splits": splits}
