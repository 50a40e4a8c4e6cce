"""``ptdm release create|list|show|diff`` (named, immutable releases) and ``ptdm export`` (a
release in the formats trainers read; ``ptdm export verify PATH`` re-checks one)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError

FORMATS = ("folders", "zip", "webdataset", "parquet", "csv", "jsonl")


def register(add: Callable[..., argparse.ArgumentParser]) -> dict[str, Callable[..., int]]:
    """Add this group's commands to the parser; returns their handlers."""
    p = add("release", "create, list, show or compare named releases (a fixed version of curated)",
            "A release pins the Delta version of every table of a dataset, with the curated counts per split "
            "and label, the class indices and a content digest (SHA-256 over the sorted image_id, label, split "
            "rows of curated). A release never changes: creating an existing name exits 2. Exports and the "
            "loader read a release, never today's tables.\n\n"
            "  ptdm release create v1 --dataset fashion --note 'first cut'\n"
            "  ptdm release list --dataset fashion\n"
            "  ptdm release show v1 --dataset fashion\n"
            "  ptdm release diff v1 v2 --dataset fashion --format csv > changes.csv")
    p.add_argument("action", choices=("create", "list", "show", "diff"), metavar="create|list|show|diff")
    p.add_argument("names", nargs="*", metavar="NAME", help="create/show: one release; diff: two (A B)")
    base.dataset_arg(p)
    p.add_argument("--note", default=None, metavar="TEXT", help="create: a note stored with the release")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="diff: table prints the counts; csv or json print every changed row")

    p = add("export", "write a release as folders, zip, webdataset, parquet, csv or jsonl",
            "Write release NAME of a dataset to PATH: folders (<split>/<label>/<image_id>.<ext> + manifest.csv), "
            "zip (the same tree in one file), webdataset (tar shards <split>-000000.tar of about "
            "export.shard_bytes), parquet (image bytes and metadata, a folder per split), csv or jsonl (the "
            "manifest alone). Every export has MANIFEST.sha256 (sha256sum -c) and release.json; the same "
            "release exported twice is byte-identical; a rerun of an interrupted export finishes it.\n\n"
            "  ptdm export --dataset fashion --release v1 --format webdataset --out /data/fashion-v1-wds\n"
            "  ptdm export --dataset fashion --release v1 --format zip --out /data/fashion-v1.zip --split train\n"
            "  ptdm export verify /data/fashion-v1-wds")
    p.add_argument("verify", nargs="*", metavar="verify PATH", help="re-check the export at PATH against its MANIFEST.sha256")
    p.add_argument("--dataset", metavar="NAME", help="the dataset")
    p.add_argument("--release", metavar="NAME", help="the release to export")
    p.add_argument("--format", choices=FORMATS, metavar="|".join(FORMATS), dest="export_format")
    p.add_argument("--out", metavar="PATH", help="local path or hdfs:// URI (a folder; a file for zip)")
    p.add_argument("--split", metavar="S", help="only this split")
    return {"release": _cmd_release, "export": _cmd_export}


def _cmd_release(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.sharing import releases

    want = {"create": 1, "show": 1, "diff": 2, "list": 0}[args.action]
    if len(args.names) != want:
        raise UsageError(f"release {args.action}: expects {want} release name{'s' if want != 1 else ''}, "
                         f"got {len(args.names)}")
    for n in args.names:
        releases.check_name(n)
    spark = base.session(cfg)
    base.require_dataset(spark, cfg, args.dataset)
    if args.action == "create":
        rel = releases.create(spark, cfg, args.dataset, args.names[0], args.note, argv)
        _show(rel)
        return 0
    if args.action == "list":
        rows = [{"name": r.name, "created_at": r.created_at, "user": r.user, "images": r.images,
                 "curated_version": r.curated_version, "digest": r.digest[:16], "note": r.note}
                for r in releases.all_releases(spark, cfg, args.dataset)]
        base.print_rows(("name", "created_at", "user", "images", "curated_version", "digest", "note"), rows,
                        "table" if args.format == "table" else args.format)
        return 0
    if args.action == "show":
        _show(releases.get(spark, cfg, args.dataset, args.names[0]))
        return 0
    a, b = (releases.get(spark, cfg, args.dataset, n) for n in args.names)
    changes = releases.diff(spark, cfg, a, b).cache()
    counts = {c: 0 for c in releases.CHANGES}
    counts.update({r[0]: int(r[1]) for r in changes.groupBy("change").count().collect()})
    if args.format == "table":
        print(f"release diff {a.name} -> {b.name} ({a.images} -> {b.images} images)")
        for c in releases.CHANGES:
            print(f"  {c:<12}{counts[c]:>10}")
    else:
        base.print_rows(("image_id", "change", "label_a", "label_b", "split_a", "split_b"),
                        [r.asDict() for r in changes.toLocalIterator()], args.format)
    if counts["moved"]:
        print(f"ptdm release diff: WARNING: {counts['moved']} image(s) moved between splits from {a.name} to {b.name}: "
              "splits must never change (a model trained on one may have seen the other's test images)",
              file=sys.stderr, flush=True)
    changes.unpersist()
    return 0


def _show(rel) -> None:
    print(f"release {rel.name} of {rel.dataset}: {rel.images} images, digest sha256:{rel.digest}")
    print(f"  created {rel.created_at} by {rel.user} (run {rel.run_id})" + (f": {rel.note}" if rel.note else ""))
    if rel.amended:
        print(f"  AMENDED {rel.amended_at} by erasure run(s) {', '.join(rel.amended_by)}: images were erased; "
              "its pinned versions of the erased tables no longer read")
    print("  tables: " + ", ".join(f"{t}@{v}" for t, v in sorted(rel.table_versions.items())))
    print("  classes: " + ", ".join(f"{i}={lb}" for lb, i in sorted(rel.classes.items(), key=lambda x: x[1])))
    base.print_rows(("split", "label", "images"),
                    [{"split": s, "label": lb, "images": n} for s, lb, n in rel.counts], "table")


def _cmd_export(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    if args.verify:
        if len(args.verify) != 2 or args.verify[0] != "verify":
            raise UsageError("expected: ptdm export verify PATH, or ptdm export --dataset D --release NAME "
                             "--format FORMAT --out PATH")
        from ptdm_spark.sharing import verify
        from ptdm_spark.sharing.export import output_for

        v = verify.verify(output_for(cfg, args.verify[1]))
        for line in v.problems:
            print(line)
        print(f"export verify: {v.checked} file(s) checked, {len(v.problems)} problem(s)"
              + ("" if v.problems else ": OK"))
        return 1 if v.problems else 0
    missing = [o for o, val in (("--dataset", args.dataset), ("--release", args.release),
                                ("--format", args.export_format), ("--out", args.out)) if not val]
    if missing:
        raise UsageError(f"missing {', '.join(missing)} (e.g. ptdm export --dataset fashion --release v1 "
                         "--format folders --out /data/fashion-v1)")
    from ptdm_spark.sharing import export

    spark = base.session(cfg)
    base.require_dataset(spark, cfg, args.dataset)
    counts = export.run(spark, cfg, args.dataset, args.release, args.export_format, args.out, args.split, argv)
    print(f"export: release {args.release} of {args.dataset} as {args.export_format}: {counts.get('images', 0)} images, "
          f"{counts.get('files', 0)} file(s) in {args.out}")
    return 0
