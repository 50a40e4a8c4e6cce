"""The ``ptdm`` command: argument parsing and dispatch only, one module per command group.

Each group module (``pipeline``, ``analyst``, ...) has ``register(add)``: it adds its sub-commands
with ``add(name, help, description)`` (which gives them the common ``--profile/--conf/--set/
--master`` options) and returns ``{command: handler}``; a handler takes ``(args, cfg, argv)`` and
returns the exit status. The work itself lives in the function's own package (stages, analysis,
sharing, ...), imported inside the handler so that ``--help`` and usage errors stay fast.

Misuse (a missing path, a bad config key, an unknown dataset) prints one line and exits 2
before any table is touched.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from ptdm_spark import __version__
from ptdm_spark.cli.base import Parser, common, print_rows, spark_overrides, submit_hint  # noqa: F401 (public)
from ptdm_spark.config import Config, load_config
from ptdm_spark.errors import UsageError

# The command groups, in the order `ptdm --help` lists them.
GROUPS = ("pipeline", "collection", "analyst", "analysis", "sharing", "labels", "protect")

EPILOG = """\
examples:
  ptdm setup                          # once after pip install: the Delta jars (needs Maven)
  ptdm run /usr/share/datasets/fashion-mnist --dataset fashion --conf fashion-mnist
  ptdm run ~/photos --dataset photos --master local[4] --conf spark.driver.maxResultSize=2g
  ptdm ingest ~/photos --dataset photos --labels dirname
  ptdm sql "SELECT label, count(*) FROM fashion.curated GROUP BY label ORDER BY label"
  ptdm history fashion images
  spark-sql --properties-file <(ptdm spark-conf)
"""

Handler = Callable[[argparse.Namespace, Config, list[str]], int]


def _build() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = Parser(
        prog="ptdm",
        description="ptdm-spark: ingest, validate, clean, normalize and deduplicate image datasets "
                    "into versioned Delta tables with Apache Spark.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ptdm-spark {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    def add(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        common(p)
        return p

    handlers: dict[str, Handler] = {}
    for group in GROUPS:
        handlers.update(importlib.import_module(f"ptdm_spark.cli.{group}").register(add))
    return parser, handlers


def build_parser() -> argparse.ArgumentParser:
    return _build()[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ptdm`` and of ``jobs/*.py``. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, handlers = _build()
    args = parser.parse_args(argv)
    try:
        files, overrides = spark_overrides(args)
        cfg = load_config(args.profile, files, overrides)
        return handlers[args.command](args, cfg, argv)
    except UsageError as exc:
        print(f"ptdm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Reading an encrypted table without its keys fails deep inside a Spark task: one line.
        from ptdm_spark.protect.encryption import crypto_error

        line = crypto_error(exc)
        if line is None:
            raise
        print(f"ptdm {args.command}: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ptdm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
