"""The Store on a real embedded chDB: calls, async wrappers, errors, the one-path rule."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from brokle_server.errors import ConfigurationError
from brokle_server.store import Store, StoreError, schema
from brokle_server.store.config import StoreSettings


def test_query_forms_and_parameters(store: Store) -> None:
    sql = "SELECT number AS n, toString(number) AS s FROM numbers({k:UInt8}) ORDER BY n"
    assert store.query(sql, {"k": 2}) == [(0, "0"), (1, "1")]
    assert store.query_dicts(sql, {"k": 2}) == [{"n": 0, "s": "0"}, {"n": 1, "s": "1"}]
    assert store.query("SELECT %(x)s", {"x": "it's"}) == [("it's",)]  # client-side binding
    assert store.ping() is True


def test_calls_run_in_the_store_database(store: Store) -> None:
    assert store.query("SELECT currentDatabase(), getSetting('max_execution_time')") == [
        (store.database, 30.0)
    ]


def test_inserts_are_synchronous_even_though_chdb_defaults_to_async(store: Store) -> None:
    assert store.query("SELECT getSetting('async_insert')") == [(True,)]
    store.command("CREATE TABLE IF NOT EXISTS sync_probe (x UInt8) ENGINE = MergeTree ORDER BY x")
    store.insert("sync_probe", ["x"], [(1,), (2,)])
    # Visible at once, with no async buffer flush in between.
    assert store.query("SELECT count() FROM sync_probe") == [(2,)]
    assert store.query(
        "SELECT count() FROM system.parts WHERE database = currentDatabase() "
        "AND table = 'sync_probe' AND active"
    ) == [(1,)]


def test_an_empty_insert_is_a_no_op(store: Store) -> None:
    store.insert("spans", schema.SPAN_COLUMNS, [], dedup_token="nothing")


def test_errors_become_store_errors(store: Store) -> None:
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE|Unknown table"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(StoreError):
        store.insert("no_such_table", ["x"], [(1,)])
    with pytest.raises(StoreError):
        store.command("CREATE TABLE")
    assert store.ping() is True  # the pool survives failed calls


def test_query_timeout_applies(store: Store) -> None:
    with pytest.raises(StoreError, match=r"TIMEOUT_EXCEEDED|Timeout exceeded"):
        store.query(
            "SELECT count() FROM numbers(100000000000) WHERE sleepEachRow(0.001) = 0",
            settings={"max_execution_time": 0.2, "max_block_size": 1},
        )


async def test_async_wrappers_run_concurrently(store: Store) -> None:
    await store.acommand(
        "CREATE TABLE IF NOT EXISTS async_probe (x UInt32) ENGINE = MergeTree ORDER BY x"
    )
    await asyncio.gather(
        *(store.ainsert("async_probe", ["x"], [(i,)], dedup_token=f"a{i}") for i in range(20))
    )
    results = await asyncio.gather(
        *(store.aquery("SELECT count() FROM async_probe") for _ in range(8))
    )
    assert results == [[(20,)]] * 8
    assert await store.aquery_dicts("SELECT max(x) AS top FROM async_probe") == [{"top": 19}]
    assert await store.aping() is True


async def test_async_open_and_close(chdb_url: str) -> None:
    async with Store(chdb_url, StoreSettings(database="async_open_probe", pool_size=1)) as store:
        assert store.is_open
        assert await store.aquery("SELECT 1") == [(1,)]
    assert not store.is_open
    assert await store.aping() is False


def test_a_second_data_path_is_refused_while_one_is_open(store: Store, tmp_path: Path) -> None:
    other = Store(f"chdb://{tmp_path}/other")
    with pytest.raises(ConfigurationError, match="one data path per process"):
        other.open()
    assert not other.is_open
    assert store.ping() is True


def test_open_and_close_are_idempotent(chdb_url: str) -> None:
    store = Store(chdb_url, StoreSettings(database="idempotent_probe", pool_size=2))
    assert store.open() is store.open()
    store.close()
    store.close()
    assert store.ping() is False
