"""The telemetry store connection: one object for embedded chDB and for a ClickHouse server.

``Store(url, settings)`` takes ``chdb:///abs/dir`` (ClickHouse in-process, data in ``dir``) or
``http(s)://user:pass@host:8123`` (a server or cluster); both are driven through
clickhouse-connect's ``Client``, so every caller writes the same ClickHouse SQL.

Concurrency. clickhouse-connect serialises the calls made on one client with a lock (a chDB
handle runs one query at a time; an HTTP client shares its session). The store keeps a small
pool of clients (``StoreSettings.pool_size``) so a long query does not hold up an insert:
several chDB handles on the one data path do run queries in parallel (measured: two 0.1 s
scans on two handles take 0.15 s, on one handle 0.28 s). chDB allows one data path per
process; opening a second path raises :class:`ConfigurationError`.

The ``a*`` methods run the same calls in the store's own worker threads (its async client
does not exist for chDB, and a store call must never block the event loop).

Inserts are synchronous and deduplicated: ``async_insert`` is turned off per insert (chDB
turns it on by default) because writers batch by themselves and acknowledge their queue
only after ``insert`` returns, so the rows must be in a part by then. A part written is
kept by a ``kill -9`` of the process (tested), and so is the record of its dedup token.
Parts are not fsync'd (ClickHouse's default; ``fsync_after_insert`` measured 2.5x slower
here), so an OS crash or power loss right after an insert can lose it: a queue that must
survive that should keep acknowledged batches until the OS has flushed them. A
``dedup_token`` makes ClickHouse drop a block it has already written under the same token,
in the table and in the materialized views fed by it.

Time values: bind DateTime64(9) bounds as integer nanoseconds
(``fromUnixTimestamp64Nano({t:Int64}, 'UTC')``); Python ``datetime`` stops at microseconds.
"""

from __future__ import annotations

import asyncio
import functools
import queue
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, ParamSpec, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from brokle_server.errors import BrokleError, ConfigurationError, Unavailable
from brokle_server.store.config import StoreSettings
from brokle_server.store.ddl import Target

# Rows come back with the Python types of the selected ClickHouse columns, decided by the SQL.
Row = tuple[Any, ...]
Parameters = Mapping[str, object] | Sequence[object]
QuerySettings = Mapping[str, str | int | float | bool]

P = ParamSpec("P")
T = TypeVar("T")

_INSERT_SETTINGS: Mapping[str, int] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
}


class StoreError(BrokleError):
    """A statement failed in the store (bad SQL, bad data, missing table...)."""

    code = "store_error"


class StoreUnavailable(Unavailable, StoreError):
    """The store cannot be reached; the same call may succeed later."""

    code = "store_unavailable"


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A parsed store URL."""

    kind: Literal["chdb", "http"]
    url: str
    path: Path | None = None

    @classmethod
    def parse(cls, url: str) -> StoreLocation:
        parts = urlsplit(url)
        if parts.scheme == "chdb":
            if parts.netloc or not parts.path.startswith("/"):
                raise ConfigurationError(
                    f"embedded store URL {url!r} must name an absolute directory: chdb:///abs/dir"
                )
            return cls("chdb", url, Path(parts.path))
        if parts.scheme in ("http", "https") and parts.hostname:
            return cls("http", url)
        raise ConfigurationError(
            f"store URL {redact_url(url)!r} must be chdb:///abs/dir or http(s)://host:port"
        )

    @property
    def redacted(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Store:
    """Connection pool to the telemetry store, with sync calls and async wrappers.

    Build it, then :meth:`open` it (or use it as a context manager); :meth:`open` loads the
    engine or connects, and creates the database when it is missing. Closing ends the pool.
    """

    def __init__(self, url: str, settings: StoreSettings | None = None) -> None:
        self.settings = settings or StoreSettings()
        self.location = StoreLocation.parse(url)
        self.target = Target(
            database=self.settings.database,
            cluster=self.settings.cluster,
            dedup_window=self.settings.dedup_window,
        )
        self._clients: queue.Queue[Any] = queue.Queue()
        self._all_clients: list[Any] = []
        self._executor: ThreadPoolExecutor | None = None

    @property
    def database(self) -> str:
        return self.target.database

    @property
    def embedded(self) -> bool:
        return self.location.kind == "chdb"

    @property
    def is_open(self) -> bool:
        return bool(self._all_clients)

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> Self:
        """Connect the pool and create the database if missing. Idempotent."""
        if self.is_open:
            return self
        if self.location.path is not None:
            self.location.path.mkdir(parents=True, exist_ok=True)
        try:
            first = self._connect()
            self._all_clients.append(first)
            cluster = f" ON CLUSTER `{self.target.cluster}`" if self.target.cluster else ""
            _call(first.command, f"CREATE DATABASE IF NOT EXISTS {self.database}{cluster}")
            first.database = self.database
            for _ in range(self.settings.pool_size - 1):
                client = self._connect()
                client.database = self.database
                self._all_clients.append(client)
        except BaseException:
            self.close()
            raise
        for client in self._all_clients:
            self._clients.put(client)
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.pool_size, thread_name_prefix="brokle-store"
        )
        return self

    def close(self) -> None:
        """Close every client and stop the worker threads. Idempotent."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        clients, self._all_clients = self._all_clients, []
        self._clients = queue.Queue()
        for client in clients:
            client.close()

    async def aopen(self) -> Self:
        # Loading chDB takes about a second: never on the event loop.
        return await asyncio.to_thread(self.open)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return await self.aopen()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _connect(self) -> Any:
        try:
            if self.location.kind == "chdb":
                return clickhouse_connect.get_client(dsn=self.location.url)
            # No session id: concurrent queries on one HTTP session are refused by the server.
            return clickhouse_connect.get_client(
                dsn=self.location.url,
                autogenerate_session_id=False,
                connect_timeout=self.settings.connect_timeout_seconds,
                send_receive_timeout=self.settings.send_receive_timeout_seconds,
            )
        except OperationalError as exc:
            raise StoreUnavailable(
                f"cannot connect to the store at {self.location.redacted}", retry_after=5.0
            ) from exc
        except ClickHouseError as exc:
            if self.embedded:
                raise ConfigurationError(
                    f"cannot open the embedded store at {self.location.path} (chDB allows one "
                    f"data path per process; is another one open?): {exc}"
                ) from exc
            raise StoreError(f"cannot open the store: {exc}") from exc

    @contextmanager
    def _client(self) -> Iterator[Any]:
        if not self.is_open:
            raise StoreError("the store is not open; call Store.open() first")
        client = self._clients.get()
        try:
            yield client
        finally:
            self._clients.put(client)

    # -- sync calls --------------------------------------------------------------------

    def command(
        self,
        sql: str,
        parameters: Parameters | None = None,
        settings: QuerySettings | None = None,
    ) -> None:
        """Run a statement that returns no rows (DDL, ``INSERT ... SELECT``, ``OPTIMIZE``)."""
        with self._client() as client:
            _call(client.command, sql, parameters=parameters, settings=dict(settings or {}))

    def query(
        self,
        sql: str,
        parameters: Parameters | None = None,
        settings: QuerySettings | None = None,
    ) -> list[Row]:
        """Run a SELECT and return its rows as tuples.

        ``parameters`` binds ``{name:Type}`` placeholders (server-side) or ``%(name)s``
        (client-side); never format values into ``sql``.
        """
        with self._client() as client:
            result = _call(
                client.query, sql, parameters=parameters, settings=self._query_settings(settings)
            )
            return list(result.result_rows)

    def query_dicts(
        self,
        sql: str,
        parameters: Parameters | None = None,
        settings: QuerySettings | None = None,
    ) -> list[dict[str, Any]]:
        """Run a SELECT and return its rows as ``{column: value}`` dicts."""
        with self._client() as client:
            result = _call(
                client.query, sql, parameters=parameters, settings=self._query_settings(settings)
            )
            return list(result.named_results())

    def insert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[object]],
        dedup_token: str | None = None,
    ) -> None:
        """Insert ``rows`` (tuples ordered as ``column_names``) synchronously.

        With ``dedup_token``, inserting the same rows again under the same token (a retried
        batch) writes nothing, as long as the token is within the tables' deduplication
        window. The token must identify the batch's content: a new batch needs a new token.
        """
        if not rows:
            return
        settings: dict[str, object] = dict(_INSERT_SETTINGS)
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        with self._client() as client:
            _call(client.insert, table, rows, column_names=list(column_names), settings=settings)

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        try:
            return self.query("SELECT 1") == [(1,)]
        except (StoreError, ConfigurationError):
            return False

    def _query_settings(self, settings: QuerySettings | None) -> dict[str, object]:
        merged: dict[str, object] = {"max_execution_time": self.settings.query_timeout_seconds}
        merged.update(settings or {})
        return merged

    # -- async wrappers ----------------------------------------------------------------

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` in the store's worker threads and await its result."""
        if self._executor is None:
            raise StoreError("the store is not open; call Store.open() first")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def acommand(
        self,
        sql: str,
        parameters: Parameters | None = None,
        settings: QuerySettings | None = None,
    ) -> None:
        await self.run(self.command, sql, parameters, settings)

    async def aquery(
        self,
        sql: str,
        parameters: Parameters | None = None,
        settings: QuerySettings | None = None,
    ) -> list[Row]:
        return await self.run(self.query, sql, parameters, settings)

    async def aquery_dicts(
        self,
        sql: str,
        parameters: Parameters | None = None,
        settings: QuerySettings | None = None,
    ) -> list[dict[str, Any]]:
        return await self.run(self.query_dicts, sql, parameters, settings)

    async def ainsert(
        self,
        table: str,
        column_names: Sequence[str],
        rows: Sequence[Sequence[object]],
        dedup_token: str | None = None,
    ) -> None:
        await self.run(self.insert, table, column_names, rows, dedup_token)

    async def aping(self) -> bool:
        if self._executor is None:
            return False
        return await self.run(self.ping)


def _call(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Call clickhouse-connect, turning its errors into the store's error classes."""
    try:
        return fn(*args, **kwargs)
    except OperationalError as exc:
        # Connection refused, timeouts and broken streams: worth retrying.
        raise StoreUnavailable(f"store unavailable: {exc}", retry_after=1.0) from exc
    except ClickHouseError as exc:
        raise StoreError(str(exc)) from exc
