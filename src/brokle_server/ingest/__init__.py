"""Telemetry ingestion: OTLP, Prometheus remote_write, Luminate JSON and native batches."""
