"""``ptdm release create|list|show|diff`` (named, immutable releases), ``ptdm export`` (a
release in the formats trainers read; ``ptdm export verify PATH`` re-checks one) and ``ptdm share``
(a release over the network: Delta Sharing shares, recipient tokens and the server)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ptdm_spark.cli import base
from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError

FORMATS = ("folders", "zip", "webdataset", "parquet", "csv", "jsonl")
SHARE_ACTIONS = ("create", "list", "drop", "grant", "revoke", "serve")


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
            "  ptdm export --dataset fashion --release v2 --format folders --out /data/fashion-v2 --with-augmented\n"
            "  ptdm export verify /data/fashion-v1-wds")
    p.add_argument("verify", nargs="*", metavar="verify PATH", help="re-check the export at PATH against its MANIFEST.sha256")
    p.add_argument("--dataset", metavar="NAME", help="the dataset")
    p.add_argument("--release", metavar="NAME", help="the release to export")
    p.add_argument("--format", choices=FORMATS, metavar="|".join(FORMATS), dest="export_format")
    p.add_argument("--out", metavar="PATH", help="local path or hdfs:// URI (a folder; a file for zip)")
    p.add_argument("--split", metavar="S", help="only this split")
    p.add_argument("--with-augmented", action="store_true",
                   help="add the release's augmented copies (ptdm augment) beside their sources, with their "
                        "lineage (source_id, recipe, seed, copy) in the manifest")

    p = add("share", "share releases over the network (Delta Sharing): shares, recipients, the server",
            "A share exposes tables of one release of a dataset (default: curated) at the release's Delta versions, "
            "never the live tables. A grant makes a recipient token and writes a Delta Sharing profile file for the "
            "recipient (only a salted hash of the token is kept, in <root>/_sharing/share_recipients); revoke ends "
            "every token of a recipient. serve runs the Delta Sharing REST server (no Spark): the stock clients "
            "(the delta-sharing Python connector, pandas, Spark's deltaSharing source) read with the profile. "
            "Every request goes to <root>/_sharing/access_log.\n\n"
            "  ptdm share create fashion_v1 --dataset fashion --release v1\n"
            "  ptdm share grant fashion_v1 --recipient lab-b --out lab-b.share --expires 30d\n"
            "  ptdm share serve --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem\n"
            "  ptdm share list\n"
            "  ptdm share revoke --recipient lab-b\n"
            "  ptdm share drop fashion_v1")
    p.add_argument("action", choices=SHARE_ACTIONS, metavar="|".join(SHARE_ACTIONS))
    p.add_argument("names", nargs="*", metavar="SHARE", help="create/drop/grant: the share")
    p.add_argument("--dataset", metavar="NAME", help="create: the dataset")
    p.add_argument("--release", metavar="NAME", help="create: the release to share")
    p.add_argument("--tables", metavar="T,...", default="curated",
                   help="create: tables of the release to expose (default: curated)")
    p.add_argument("--comment", metavar="TEXT", help="create: a comment shown to recipients")
    p.add_argument("--recipient", metavar="NAME", help="grant/revoke: who gets (or loses) access")
    p.add_argument("--out", metavar="PROFILE.share", help="grant: the profile file to write (mode 600)")
    p.add_argument("--expires", metavar="WHEN",
                   help="grant: 30d, 12h, 90m, 2w, an ISO date or never (default: share.token_expires)")
    p.add_argument("--endpoint", metavar="URL", help="grant: the server URL written into the profile (default: share.endpoint)")
    p.add_argument("--host", metavar="ADDR", help="serve: listen address (default: share.host)")
    p.add_argument("--port", type=int, metavar="N", help="serve: TCP port (default: share.port)")
    p.add_argument("--tls-cert", metavar="FILE", help="serve: PEM certificate (with --tls-key): HTTPS")
    p.add_argument("--tls-key", metavar="FILE", help="serve: PEM private key")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table", help="list: output format")

    p = add("audit", "one timeline of a dataset: runs, table changes, shares and who read what",
            "Prints, oldest first, who ran which jobs (runs), every commit of the dataset's tables (Delta history, "
            "with the run that made it), the shares and grants of its releases, and every request of the share "
            "server on it (access_log). No Spark.\n\n"
            "  ptdm audit --dataset fashion\n"
            "  ptdm audit --dataset fashion --since 7d\n"
            "  ptdm audit --dataset fashion --since 2026-11-01 --format csv > audit.csv")
    base.dataset_arg(p)
    p.add_argument("--since", metavar="WHEN", help="only events from then on: a duration ago (7d, 12h, 30m) or an ISO date/time")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    return {"release": _cmd_release, "export": _cmd_export, "share": _cmd_share, "audit": _cmd_audit}


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
    counts = export.run(spark, cfg, args.dataset, args.release, args.export_format, args.out, args.split, argv,
                        args.with_augmented)
    copies = f" ({counts['augmented']} augmented)" if "augmented" in counts else ""
    print(f"export: release {args.release} of {args.dataset} as {args.export_format}: {counts.get('images', 0)} images"
          f"{copies}, {counts.get('files', 0)} file(s) in {args.out}")
    return 0


def _cmd_share(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    from ptdm_spark.sharing import shares, tokens

    want = {"create": 1, "drop": 1, "grant": 1, "list": 0, "revoke": 0, "serve": 0}[args.action]
    if len(args.names) != want:
        raise UsageError(f"share {args.action}: expects {want} share name{'s' if want != 1 else ''}, got {len(args.names)}")
    needed = {"create": ("--dataset", "--release"), "grant": ("--recipient", "--out"), "revoke": ("--recipient",)}
    missing = [o for o in needed.get(args.action, ()) if not getattr(args, o[2:].replace("-", "_"))]
    if missing:
        raise UsageError(f"share {args.action}: missing {', '.join(missing)}")
    if args.action == "serve" and bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("share serve: give both --tls-cert and --tls-key (or neither)")
    if args.action == "create":
        tables = [t.strip() for t in args.tables.split(",") if t.strip()]
        if not tables:
            raise UsageError("share create: --tables names no table")
        s = shares.create_share(cfg, args.names[0], args.dataset, args.release, tables, args.comment)
        print(f"share {s.name}: release {s.release} of {s.dataset}, tables "
              + ", ".join(f"{s.dataset}.{t}@{v}" for t, v in sorted(s.tables.items())))
        return 0
    if args.action == "drop":
        shares.drop_share(cfg, args.names[0])
        print(f"share {args.names[0]} dropped (its recipients no longer see it)")
        return 0
    if args.action == "list":
        recipients = shares.read(cfg.lakehouse.root, "share_recipients")
        rows = [{"share": s.name, "dataset": s.dataset, "release": s.release,
                 "tables": ",".join(f"{t}@{v}" for t, v in sorted(s.tables.items())),
                 "recipients": ",".join(shares.recipients_of(recipients, s.name)),
                 "created_at": s.created_at, "comment": s.comment} for s in shares.all_shares(cfg.lakehouse.root)]
        base.print_rows(("share", "dataset", "release", "tables", "recipients", "created_at", "comment"), rows, args.format)
        return 0
    if args.action == "grant":
        try:
            expires = tokens.parse_expiry(args.expires or cfg.share.token_expires)
        except ValueError as exc:
            raise UsageError(f"--expires: {exc}") from None
        endpoint = args.endpoint or cfg.share.endpoint or f"http://{cfg.share.host}:{cfg.share.port}/delta-sharing"
        if not endpoint.startswith(("http://", "https://")):
            raise UsageError(f"--endpoint {endpoint!r}: must be an http:// or https:// URL")
        profile, token_id = shares.grant(cfg, args.names[0], args.recipient, expires, endpoint.rstrip("/"))
        shares.write_profile(args.out, profile)
        print(f"share grant: {args.recipient} may read {args.names[0]} (token {token_id}, expires "
              f"{profile.get('expirationTime', 'never')}); profile: {args.out}")
        return 0
    if args.action == "revoke":
        n = shares.revoke(cfg, args.recipient)
        print(f"share revoke: {n} token(s) of {args.recipient} revoked")
        return 0
    from ptdm_spark.sharing import server

    return server.serve(cfg, args.host or cfg.share.host, args.port or cfg.share.port, args.tls_cert, args.tls_key)


def _cmd_audit(args: argparse.Namespace, cfg: Config, argv: list[str]) -> int:
    import datetime as dt
    import os

    from ptdm_spark.sharing import audit, shares, tokens

    since = None
    if args.since:
        now = dt.datetime.now(dt.timezone.utc)
        try:
            ahead = tokens.parse_expiry(args.since, now) if args.since[:1].isdigit() and args.since[-1:] in "smhdw" else None
            since = now - (ahead - now) if ahead else dt.datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--since {args.since!r}: use a duration ago (7d, 12h, 30m) or an ISO date/time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.timezone.utc)
    folder = shares.dataset_table_uri(cfg.lakehouse.root, args.dataset, "")
    if "://" not in folder and not os.path.isdir(folder):
        raise UsageError(f"no dataset {args.dataset!r} under {cfg.lakehouse.root}")
    from ptdm_spark.protect import encryption

    events = audit.timeline(cfg.lakehouse.root, args.dataset, since, encryption.check(cfg.security.encryption))
    base.print_rows(("time", "kind", "who", "what", "detail"), events, args.format)
    return 0
