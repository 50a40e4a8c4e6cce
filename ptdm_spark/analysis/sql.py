"""The analyst's side of SQL: which session answers (the endpoint or an in-process one), whether a
statement only reads, and the Delta look-ups of ``ptdm tables`` / ``ptdm history`` in plain SQL.

Everything here works the same over a classic session and a Spark Connect one: Connect has no JVM
to call and no Delta Python API without Delta's Connect plugin, so table versions, history and
counts are read with SQL (``DESCRIBE HISTORY delta.`path```), and statements are classified
from the parsed plan's text (``EXPLAIN EXTENDED``), which both kinds of session give.
"""

from __future__ import annotations

import logging
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ptdm_spark.config import Config
from ptdm_spark.errors import UsageError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


# --- read-only statements ----------------------------------------------------------------------

# Commands (parsed plan roots) that only read. Everything else that is a command is refused.
READ_COMMANDS = frozenset({
    "ShowTables", "ShowTablesCommand", "ShowTableExtended", "ShowNamespaces", "ShowNamespacesCommand",
    "ShowViews", "ShowColumns", "ShowColumnsCommand", "ShowFunctions", "ShowCreateTable",
    "ShowCreateTableCommand", "ShowTableProperties", "ShowTablePropertiesCommand", "ShowPartitions",
    "ShowCatalogs", "ShowCatalogsCommand", "ShowCurrentNamespace", "ShowCurrentNamespaceCommand",
    "DescribeRelation", "DescribeColumn", "DescribeNamespace", "DescribeFunction", "DescribeTableCommand",
    "DescribeDeltaHistory", "DescribeDeltaHistoryCommand", "DescribeDeltaDetailCommand",
    "DescribeQueryCommand", "SetCatalogAndNamespace", "SetCommand", "ResetCommand", "ListJarsCommand",
    "ListFilesCommand", "ExplainCommand",
})

# Plan nodes that write, drop or change something, wherever they appear in the tree (a WITH
# clause wraps an INSERT; a query's root is then UnresolvedWith).
_WRITE_NODE = re.compile(
    r"^(Insert|Create|Drop|Alter|Delete|Update|Merge|Truncate|Optimize|Vacuum|Restore|Clone|Convert|Reorg"
    r"|Write|Append|Overwrite|Replace|Rename|Repair|Recover|Analyze|Call|Comment|Unset|Load|Grant|Revoke"
    r"|Cache|Uncache|Clear|Refresh|Add|Set(Table|Namespace|View|Variable|Location|Owner)|Delta(Generate|Reorg)"
    r"|AddJars|AddFiles|AddArchives|CreateVariable|DropVariable)"
)
_NODE = re.compile(r"^[\s:|+\-!]*'?([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Verdict:
    read_only: bool
    root: str
    writer: str = ""  # the node that writes, when one does

    @property
    def what(self) -> str:
        return self.writer or self.root


def classify(parsed_plan: str) -> Verdict:
    """Decide from a parsed (unresolved) logical plan's tree text whether the statement only reads.

    The root decides for commands (only :data:`READ_COMMANDS` pass); any node in the tree that
    writes (an INSERT under a WITH, for example) makes the whole statement a write.
    """
    names = [m.group(1) for line in parsed_plan.splitlines() if (m := _NODE.match(line))]
    if not names:
        return Verdict(False, "?")
    root = names[0]
    if root in READ_COMMANDS:
        return Verdict(True, root)
    for name in names:
        if _WRITE_NODE.match(name):
            return Verdict(False, root, name)
    if root.endswith(("Command", "Statement")):
        return Verdict(False, root)
    return Verdict(True, root)


def parsed_plan(spark: "SparkSession", query: str) -> str:
    """The parsed logical plan of ``query`` as tree text, without running it.

    In-process the session's own parser gives it directly; over Spark Connect, ``EXPLAIN EXTENDED``
    (which never executes the statement) carries it as its first section.

    Raises:
        pyspark.errors.ParseException: the statement does not parse.
    """
    jsession = getattr(spark, "_jsparkSession", None)
    if jsession is not None:
        return jsession.sessionState().sqlParser().parsePlan(query).treeString()
    text = spark.sql(f"EXPLAIN EXTENDED {query}").first()[0]
    section = text.split("== Parsed Logical Plan ==", 1)[-1]
    return section.split("== Analyzed Logical Plan ==", 1)[0].strip("\n")


# Only blanks and parentheses before the first keyword: comments (nested /* */, -- continued by a
# backslash) leave the decision to the parser.
_LEADING = re.compile(r"\A[\s(]*")


def starts_as_query(statement: str) -> bool:
    """True when the statement's first keyword is SELECT.

    Spark's grammar reaches a statement that begins with SELECT only through its ``query`` rule,
    which has no data-changing form (writes begin with INSERT, FROM ... INSERT, WITH ... INSERT,
    MERGE, DROP...): such a statement is read-only by the grammar, and over Spark Connect it
    skips the ``EXPLAIN`` round trip. Everything else is decided from the parsed plan.
    """
    rest = statement[_LEADING.match(statement).end():]
    return re.match(r"select\b", rest, re.I) is not None


def check_read_only(spark: "SparkSession", query: str) -> None:
    """Raise :class:`UsageError` unless ``query`` only reads.

    Raises:
        UsageError: the statement writes or drops (one line with the ``--write`` hint), or does not parse.
    """
    from pyspark.errors import ParseException

    if starts_as_query(query) and getattr(spark, "_jsparkSession", None) is None:
        return  # read-only by the grammar; a syntax error surfaces when it runs
    try:
        verdict = classify(parsed_plan(spark, query))
    except ParseException as exc:
        raise UsageError(f"SQL syntax: {first_line(exc)}") from None
    if not verdict.read_only:
        raise UsageError(f"refused: the statement changes data or the catalog ({verdict.what}); "
                         "ptdm sql is read-only unless you pass --write")


# --- which session answers ---------------------------------------------------------------------


def quiet_python_loggers() -> None:
    """pyspark logs every SQL error as a multi-kilobyte JSON record on stderr before raising it;
    the CLI prints the error's first line itself."""
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        logging.getLogger(name).disabled = True


def endpoint_url(cfg: Config, remote: str | None) -> str | None:
    """The Spark Connect URL to use: ``--remote``, else ``sql.remote``, else this lakehouse's own
    running endpoint; None for an in-process session.

    Raises:
        UsageError: ``--remote`` is not ``sc://host:port`` or ``local``.
    """
    from ptdm_spark.session import read_server_state

    chosen = remote if remote is not None else cfg.sql.remote
    if chosen == "local":
        return None
    if chosen:
        if not chosen.startswith("sc://"):
            raise UsageError(f"--remote {chosen}: expected sc://host:port or local")
        return chosen
    state = read_server_state(cfg.lakehouse.catalog_path)
    return state["url"] if state else None


def reachable(url: str) -> bool:
    from ptdm_spark.session import port_open

    host, port = host_port(url)
    return port_open(host, port, timeout=1.0)


def host_port(url: str) -> tuple[str, int]:
    rest = url.removeprefix("sc://").split("/", 1)[0].split(";", 1)[0]
    host, _, port = rest.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise UsageError(f"{url}: expected sc://host:port") from None


def analyst_session(cfg: Config, remote: str | None, query: str = "") -> tuple["SparkSession", str]:
    """A session for ``ptdm sql|tables|history``: a Spark Connect session to the endpoint when one
    answers, else the in-process one. Returns the session and where it runs ("in-process" or the
    URL). ptdm's SQL functions are defined in a Connect session when ``query`` names one (each
    costs a round trip).

    Raises:
        UsageError: no lakehouse at ``lakehouse.root`` (nothing is created), or the embedded
            catalog is held by another process and no endpoint runs.
    """
    quiet_python_loggers()
    url = endpoint_url(cfg, remote)
    if url and reachable(url):
        from pyspark.sql import SparkSession

        from ptdm_spark.session import SQL_FUNCTIONS

        spark = SparkSession.builder.remote(url).getOrCreate()
        for statement in SQL_FUNCTIONS:  # temporary functions live in the client's own session
            name = statement.split("FUNCTION", 1)[1].split("(", 1)[0].strip()
            if name.lower() in query.lower():
                spark.sql(statement)
        return spark, url
    if url and (remote or cfg.sql.remote):  # asked for explicitly: say so, then answer anyway
        print(f"note: no SQL endpoint answers at {url}; running in-process", file=sys.stderr)
    require_lakehouse(cfg)
    from ptdm_spark.session import get_session

    return get_session(cfg.spark, cfg.lakehouse, cfg.security.encryption), "in-process"


def require_lakehouse(cfg: Config) -> None:
    """Analysts read an existing lakehouse: a missing local root is an error, not a new catalog."""
    from pathlib import Path

    lh = cfg.lakehouse
    if lh.is_local:
        root = Path(lh.root.removeprefix("file:")).expanduser().resolve()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise UsageError(f"lakehouse.root: {root} {what} (nothing to query; run a job first, "
                             "or --set lakehouse.root=PATH)")


# --- Delta look-ups in SQL ---------------------------------------------------------------------


def _quoted(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def history(spark: "SparkSession", path: str, limit: int | None = None) -> list[dict[str, Any]] | None:
    """The table's commits, newest first (``DESCRIBE HISTORY``), or None when no Delta table is there."""
    from pyspark.errors import AnalysisException

    sql = f"DESCRIBE HISTORY {_quoted(path)}" + (f" LIMIT {int(limit)}" if limit else "")
    try:
        rows = spark.sql(sql).collect()
    except AnalysisException:
        return None
    return [r.asDict(recursive=True) for r in rows]


def version(spark: "SparkSession", path: str) -> int | None:
    rows = history(spark, path, 1)
    return rows[0]["version"] if rows else None


def count(spark: "SparkSession", path: str) -> int:
    return spark.sql(f"SELECT count(*) AS n FROM {_quoted(path)}").first()[0]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
