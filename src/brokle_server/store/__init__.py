"""The telemetry store: ClickHouse SQL through clickhouse-connect (embedded chDB or a server)."""
