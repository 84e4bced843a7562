"""The telemetry store: ClickHouse SQL through clickhouse-connect (embedded chDB or a server).

``client`` holds the :class:`Store` connection pool, ``schema`` the row contract writers
insert, ``ddl`` the rendering of the SQL migrations for a node or a cluster, and ``migrate``
the migrator behind ``brokle migrate``.
"""

from brokle_server.store.client import Store, StoreError, StoreUnavailable

__all__ = ["Store", "StoreError", "StoreUnavailable"]
