"""Rendering of the store's DDL templates for one node or a cluster, and statement splitting.

Migration files are plain ClickHouse SQL written for a single node, with three markers:

``${db}``
    the store database (validated as a bare identifier);
``${on_cluster}``
    nothing on a single node, ``ON CLUSTER `name``` on a cluster;
``${dedup_window}``
    the MergeTree setting that keeps the hashes of recent insert blocks, so a retried insert
    with the same deduplication token is dropped: ``non_replicated_deduplication_window = N``
    on a single node, ``replicated_deduplication_window = N`` on a cluster.

On a cluster every ``ENGINE = <X>MergeTree(args)`` clause becomes
``ENGINE = Replicated<X>MergeTree('/clickhouse/tables/{shard}/{database}/<table>', '{replica}',
args)``, the table name being taken from the statement's ``CREATE TABLE``. Rewriting the engine
instead of templating it keeps the files readable and runnable as written, and keeps the two
renderings from drifting apart.

Everything here is pure text processing, so the cluster rendering is tested without a server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from brokle_server.errors import ConfigurationError

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A marker with the space before it, so an empty value leaves no trailing blank behind.
_MARKER = re.compile(r"( ?)\$\{(\w+)\}")
_CREATE_TABLE = re.compile(
    r"\bCREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:[\w`]+\.)?`?(\w+)`?", re.IGNORECASE
)
# The engine name and its optional argument list (engine arguments never nest parentheses
# deeper than one level in our files, e.g. ``ReplacingMergeTree(ingested_at)``).
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w*MergeTree)\b(?:\s*\(([^()]*)\))?", re.IGNORECASE)

DEFAULT_DEDUP_WINDOW = 10_000


@dataclass(frozen=True, slots=True)
class Target:
    """Where the DDL is rendered for: the database, and the cluster if any."""

    database: str
    cluster: str | None = None
    dedup_window: int = DEFAULT_DEDUP_WINDOW

    def __post_init__(self) -> None:
        check_identifier(self.database, "store database")
        if self.cluster is not None:
            check_identifier(self.cluster, "cluster")
        if self.dedup_window < 1:
            raise ConfigurationError("the insert deduplication window must be at least 1")


def check_identifier(name: str, what: str) -> str:
    """Return ``name`` if it is a bare ClickHouse identifier, else raise ConfigurationError."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"{what} name {name!r} must be letters, digits and underscores, not starting "
            "with a digit"
        )
    return name


def render(sql: str, target: Target) -> str:
    """Render one migration file's text for ``target`` (see the module docstring)."""
    clustered = target.cluster is not None
    values = {
        "db": target.database,
        "on_cluster": f"ON CLUSTER `{target.cluster}`" if clustered else "",
        "dedup_window": (
            f"replicated_deduplication_window = {target.dedup_window}"
            if clustered
            else f"non_replicated_deduplication_window = {target.dedup_window}"
        ),
    }

    def substitute(match: re.Match[str]) -> str:
        space, name = match.groups()
        if name not in values:
            raise ConfigurationError(f"unknown DDL template marker ${{{name}}}")
        return space + values[name] if values[name] else ""

    text = _MARKER.sub(substitute, sql)
    if not clustered:
        return text
    return "".join(_replicate_engine(statement) for statement in _split_keeping_separators(text))


def _replicate_engine(statement: str) -> str:
    engine = _ENGINE.search(statement)
    if engine is None:
        return statement
    table = _CREATE_TABLE.search(statement)
    if table is None:
        raise ConfigurationError("an ENGINE clause outside CREATE TABLE cannot be replicated")
    name, args = engine.group(1), (engine.group(2) or "").strip()
    if name.lower().startswith("replicated"):
        return statement
    zk_args = f"'/clickhouse/tables/{{shard}}/{{database}}/{table.group(1)}', '{{replica}}'"
    all_args = f"{zk_args}, {args}" if args else zk_args
    replacement = f"ENGINE = Replicated{name}({all_args})"
    return statement[: engine.start()] + replacement + statement[engine.end() :]


def split_statements(sql: str) -> list[str]:
    """Split SQL text into statements on ``;`` outside quotes and comments.

    Statements are returned stripped and without their ``;``; pieces holding only comments
    and whitespace are dropped. Quoted text (``'..'``, ``".."``, backquoted names) may contain
    ``;``, ``--`` and escaped quotes (``\\'`` or ``''``).
    """
    statements = []
    for piece in _split_keeping_separators(sql):
        body = piece.strip()
        if body.endswith(";"):
            body = body[:-1].rstrip()
        if _strip_comments(body).strip():
            statements.append(body)
    return statements


def _split_keeping_separators(sql: str) -> list[str]:
    """Cut ``sql`` after each top-level ``;``; joining the pieces gives back ``sql``."""
    pieces: list[str] = []
    start = 0
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            i += 1
            pieces.append(sql[start:i])
            start = i
        else:
            i += 1
    if start < n:
        pieces.append(sql[start:])
    return pieces


def _skip_quoted(sql: str, i: int) -> int:
    """Index just past the quoted token opening at ``sql[i]``."""
    quote = sql[i]
    i += 1
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "\\":
            i += 2
        elif ch == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote is an escaped quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _strip_comments(sql: str) -> str:
    out: list[str] = []
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            end = _skip_quoted(sql, i)
            out.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
