"""Settings for the ingest endpoints (``BROKLE_INGEST__*``).

The limits below are what keeps one request from hurting the process: decoders apply them
item by item and report what they dropped or rejected instead of failing the request.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class IngestSettings(BaseModel):
    max_body_bytes: int = Field(
        16 << 20, ge=1024, description="Largest ingest request body, after decompression."
    )
    max_attributes: int = Field(
        512,
        ge=8,
        description="Attributes kept per span, span event, log record or native item; the "
        "rest are dropped and counted in `brokle.dropped_attributes_count`.",
    )
    max_attribute_value_chars: int = Field(
        32 << 10,
        ge=64,
        description="Longest attribute value kept; longer values are cut and counted in "
        "`brokle.truncated_attributes_count`.",
    )
    max_attribute_key_chars: int = Field(
        256, ge=16, description="Longest attribute key; attributes with longer keys are dropped."
    )
    max_io_chars: int = Field(
        1 << 20,
        ge=1024,
        description="Longest prompt (input) or completion (output) text kept on a span.",
    )
    max_span_events: int = Field(
        256, ge=0, description="Events kept per span; the rest are dropped and counted."
    )
    max_span_links: int = Field(
        128, ge=0, description="Links kept per span; the rest are dropped and counted."
    )
    max_future_skew_seconds: int = Field(
        3600,
        ge=0,
        description="How far in the future an item's timestamp may lie; later items are "
        "rejected (so one request cannot touch far-away partitions).",
    )
    max_batch_items: int = Field(
        10_000,
        ge=1,
        description="Most items in one native, score or Luminate JSON batch.",
    )
    max_items_per_request: int = Field(
        100_000,
        ge=100,
        description="Most spans, log records, metric data points or remote_write samples in "
        "one request (413 beyond): bounds the memory one decoded request can take. The "
        "entries that hold them (OTLP resource/scope entries and metrics, remote_write "
        "series) are bounded by the same number, counted apart.",
    )
    max_labels: int = Field(
        64, ge=4, description="Most labels on one metric series; larger series are rejected."
    )
    max_label_value_chars: int = Field(
        2048, ge=64, description="Longest metric label value; longer values are cut."
    )
    otlp_metric_suffixes: bool = Field(
        True,
        description="Add Prometheus unit suffixes (`_seconds`, `_bytes`, ...) and `_total` "
        "to OTLP metric names, as OpenTelemetry's Prometheus compatibility rules do.",
    )
    exponential_histogram_max_scale: int = Field(
        3,
        ge=-10,
        le=20,
        description="OTLP exponential histograms are merged down to this scale (2**scale "
        "buckets per power of two) before they become `le` buckets.",
    )
