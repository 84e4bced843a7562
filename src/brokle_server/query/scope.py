"""The tenant boundary of the query layer: every statement is built for one :class:`QueryScope`.

A reader never writes ``FROM spans`` itself. It asks a :class:`Sql` builder (made from the
scope) for ``sql.select(table, ...)`` / ``sql.delete(table, ...)``, which put
``project_id = {pid:String}`` (and ``environment = {penv:String}`` for a key bound to one
environment) first in that table's ``WHERE``. Values only enter a statement through
:meth:`Sql.bind`, which names a server-side parameter (``{p3:String}``); nothing a client
sends is formatted into SQL text.

:meth:`Sql.build` then seals the text into a :class:`ScopedQuery`, the only thing
:class:`TenantReader` runs. Sealing checks that every table reference (``FROM <table>``) has
its tenant predicate and that no table is joined by name (joins take a scoped subquery), so
a statement written by hand around the builder fails loudly instead of reading another
tenant's rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import structlog

from brokle_server.errors import BrokleError, Unavailable
from brokle_server.store.client import Store, StoreError, StoreUnavailable

log = structlog.get_logger("brokle.query")

# Tables the query layer reads or deletes from, and how each one names its environment.
TABLES: Final[Mapping[str, Literal["column", "array"]]] = {
    "spans": "column",
    "trace_index": "array",
    "logs": "column",
    "series": "column",
    "samples": "column",
    "scores": "column",
    "events": "column",
}
TENANT_PARAM: Final = "pid"
ENV_PARAM: Final = "penv"
_TENANT: Final = "project_id = {pid:String}"
_TABLE_REF = re.compile(r"\bFROM\s+(?![\s(])", re.IGNORECASE)
_JOIN_BY_NAME = re.compile(r"(?<!ARRAY )\bJOIN\s+(?![\s(])", re.IGNORECASE)
_ALIAS = re.compile(r"[a-z][a-z0-9_]{0,15}")

# Every read is read-only at the server too (``readonly=2`` still lets us pass settings).
READ_SETTINGS: Final[Mapping[str, int]] = {"readonly": 2}


class QueryFailed(BrokleError):
    """The store refused a statement the query layer built: a bug, not bad input."""

    code = "query_failed"


@dataclass(frozen=True, slots=True)
class QueryScope:
    """The tenant a query reads: a project, and the environment when the key is bound to one."""

    project_id: str
    environment: str | None = None

    def __post_init__(self) -> None:
        if not self.project_id:
            raise ValueError("a query scope needs a project id")


@dataclass(frozen=True, slots=True)
class ScopedQuery:
    """A sealed statement: SQL text and its parameters, tenant parameters included."""

    scope: QueryScope
    sql: str
    params: Mapping[str, object]


@dataclass(slots=True)
class Sql:
    """Builds one statement for one tenant; see the module docstring."""

    scope: QueryScope
    _params: dict[str, object] = field(default_factory=dict)
    _next: int = 0
    _tables: int = 0

    def __post_init__(self) -> None:
        self._params[TENANT_PARAM] = self.scope.project_id
        if self.scope.environment is not None:
            self._params[ENV_PARAM] = self.scope.environment

    def bind(self, value: object, type_: str) -> str:
        """A placeholder for ``value`` as a server-side parameter of ClickHouse type ``type_``."""
        name = f"p{self._next}"
        self._next += 1
        self._params[name] = value
        return f"{{{name}:{type_}}}"

    def tenant(self, table: str, alias: str = "") -> str:
        """The tenant predicate for one reference to ``table``."""
        env_kind = TABLES.get(table)
        if env_kind is None:
            raise ValueError(f"the query layer does not read table {table!r}")
        if alias and not _ALIAS.fullmatch(alias):
            raise ValueError(f"bad table alias {alias!r}")
        prefix = f"{alias}." if alias else ""
        clause = f"{prefix}{_TENANT}"
        if self.scope.environment is not None:
            if env_kind == "column":
                clause += f" AND {prefix}environment = {{{ENV_PARAM}:String}}"
            else:
                clause += f" AND has({prefix}environments, {{{ENV_PARAM}:String}})"
        self._tables += 1
        return clause

    def select(
        self,
        table: str,
        columns: Sequence[str],
        *,
        where: Iterable[str] = (),
        alias: str = "",
        array_join: str | None = None,
        group_by: Sequence[str] = (),
        having: Iterable[str] = (),
        order_by: Sequence[str] = (),
        limit_by: tuple[int, Sequence[str]] | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> str:
        """``SELECT columns FROM table WHERE <tenant> AND where...`` and the given clauses."""
        conditions = [self.tenant(table, alias), *where]
        parts = [
            f"SELECT {', '.join(columns)}",
            f"FROM {table}" + (f" AS {alias}" if alias else ""),
        ]
        if array_join is not None:
            parts.append(f"ARRAY JOIN {array_join}")
        parts.append("WHERE " + " AND ".join(f"({c})" for c in conditions))
        if group_by:
            parts.append("GROUP BY " + ", ".join(group_by))
        having = list(having)
        if having:
            parts.append("HAVING " + " AND ".join(f"({c})" for c in having))
        if order_by:
            parts.append("ORDER BY " + ", ".join(order_by))
        if limit_by is not None:
            parts.append(f"LIMIT {int(limit_by[0])} BY {', '.join(limit_by[1])}")
        if limit is not None:
            parts.append(f"LIMIT {int(limit)}")
            if offset:
                parts.append(f"OFFSET {int(offset)}")
        return "\n".join(parts)

    def delete(self, table: str, where: Iterable[str], on_cluster: str | None = None) -> str:
        """A lightweight ``DELETE FROM table WHERE <tenant> AND where...``."""
        cluster = f" ON CLUSTER `{on_cluster}`" if on_cluster else ""
        conditions = [self.tenant(table), *where]
        where_text = " AND ".join(f"({c})" for c in conditions)
        # The table is checked against TABLES by tenant(); values are bound parameters.
        return f"DELETE FROM {table}{cluster} WHERE {where_text}"  # noqa: S608

    def build(self, text: str) -> ScopedQuery:
        """Seal ``text`` (made of this builder's selects) into a runnable query."""
        references = len(_TABLE_REF.findall(text))
        if references == 0 or references > text.count(_TENANT) or references > self._tables:
            raise AssertionError("a table is read without its tenant predicate")
        if _JOIN_BY_NAME.search(text):
            raise AssertionError("tables must be joined through scoped subqueries")
        return ScopedQuery(self.scope, text, dict(self._params))


class TenantReader:
    """Runs sealed queries of one tenant on the store, off the event loop."""

    def __init__(self, store: Store, scope: QueryScope) -> None:
        self.store = store
        self.scope = scope

    def sql(self) -> Sql:
        return Sql(self.scope)

    def _check(self, query: ScopedQuery) -> None:
        if query.scope != self.scope or query.params.get(TENANT_PARAM) != self.scope.project_id:
            raise AssertionError("a query built for another tenant reached this reader")

    async def rows(
        self, query: ScopedQuery, settings: Mapping[str, int | float | str] | None = None
    ) -> list[dict[str, Any]]:
        self._check(query)
        merged: dict[str, int | float | str] = {**READ_SETTINGS, **(settings or {})}
        try:
            return await self.store.aquery_dicts(query.sql, query.params, merged)
        except StoreUnavailable as exc:
            raise Unavailable("The telemetry store is unavailable; retry shortly") from exc
        except StoreError as exc:
            raise _store_failure(exc) from exc

    async def execute(self, query: ScopedQuery) -> None:
        """Run a statement returning no rows (the admin deletes)."""
        self._check(query)
        try:
            await self.store.acommand(query.sql, query.params)
        except StoreUnavailable as exc:
            raise Unavailable("The telemetry store is unavailable; retry shortly") from exc
        except StoreError as exc:
            raise _store_failure(exc) from exc


def _store_failure(exc: StoreError) -> BrokleError:
    text = str(exc)
    if "TIMEOUT_EXCEEDED" in text or "Code: 159" in text:
        return Unavailable(
            "The query took too long; narrow the time range or add filters", retry_after=5.0
        )
    # The store's message names tables and SQL: log it, never send it to the caller.
    log.error("query failed in the store", error=text[:2000])
    return QueryFailed("The query failed in the telemetry store")
