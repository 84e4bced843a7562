"""Prometheus remote_write 1.0 (``prometheus.WriteRequest``) → series and sample rows.

The body arrives snappy-compressed in the *block* format; decompress it with
:func:`brokle_server.ingest.decode.decompress` (``Content-Encoding: snappy``) first.
There is no maintained Python package for Prometheus' protos, so the few messages needed
are declared here with ``descriptor_pb2`` and parsed by the upb runtime (wire-compatible
with ``prompb/remote.proto`` and ``prompb/types.proto``; exemplars and native histograms
are declared as raw bytes so they can be counted, not decoded).

Validation, per series: ``__name__`` is required and must match
``[a-zA-Z_:][a-zA-Z0-9_:]*``; label names must match ``[a-zA-Z_][a-zA-Z0-9_]*`` and be
unique; empty label values mean "no label" and are dropped; at most ``max_labels`` labels;
values longer than ``max_label_value_chars`` reject the series (cutting them would merge
distinct series). Samples outside the accepted time window are rejected. NaN and ±Inf are
kept as values, except Prometheus' *stale marker* (the NaN with bit pattern
``0x7ff0000000000002``), which is dropped without counting: it only says "this series
ended", and storing it as a value would poison aggregations. Native histograms are not
supported and are counted as rejected.

Rejections do not stop the good series: the caller stores ``samples``/``series`` and then,
if ``rejected.count`` is non-zero, answers **400** with ``rejected.message()`` — as Cortex
and Mimir do; Prometheus does not retry a 4xx, so the valid part is not sent twice. A body
that is not a WriteRequest at all raises ``PayloadDecodeError`` (400).
"""

from __future__ import annotations

import re
import struct
from datetime import datetime
from functools import cache
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.common import ItemBudget, Rejections
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError
from brokle_server.ingest.series import MetricBatch, SeriesCollector
from brokle_server.store.schema import series_id

STALE_NAN_BITS: Final = 0x7FF0000000000002
MAX_METRIC_NAME_CHARS: Final = 512
_STALE_BYTES: Final = struct.pack("<Q", STALE_NAN_BITS)
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_DEFAULT_SETTINGS: Final = IngestSettings()
# prompb MetricMetadata.MetricType → our metric_type.
_METADATA_TYPES: Final = {
    1: "counter",
    2: "gauge",
    3: "histogram",
    4: "histogram",
    5: "summary",
    6: "gauge",
    7: "gauge",
}
_FAMILY_SUFFIXES: Final = ("_bucket", "_sum", "_count", "_total", "_created", "_info")


@cache
def write_request_class() -> Any:
    """The ``WriteRequest`` message class, built once from a hand-written descriptor."""
    f = descriptor_pb2.FieldDescriptorProto
    opt, rep = f.LABEL_OPTIONAL, f.LABEL_REPEATED
    proto = descriptor_pb2.FileDescriptorProto(
        name="brokle/prometheus/remote.proto", package="brokle.prompb", syntax="proto3"
    )
    messages: dict[str, list[tuple[str, int, int, int, str]]] = {
        "Label": [("name", 1, f.TYPE_STRING, opt, ""), ("value", 2, f.TYPE_STRING, opt, "")],
        "Sample": [("value", 1, f.TYPE_DOUBLE, opt, ""), ("timestamp", 2, f.TYPE_INT64, opt, "")],
        "TimeSeries": [
            ("labels", 1, f.TYPE_MESSAGE, rep, ".brokle.prompb.Label"),
            ("samples", 2, f.TYPE_MESSAGE, rep, ".brokle.prompb.Sample"),
            ("exemplars", 3, f.TYPE_BYTES, rep, ""),
            ("histograms", 4, f.TYPE_BYTES, rep, ""),
        ],
        "MetricMetadata": [
            ("type", 1, f.TYPE_INT32, opt, ""),
            ("metric_family_name", 2, f.TYPE_STRING, opt, ""),
            ("help", 4, f.TYPE_STRING, opt, ""),
            ("unit", 5, f.TYPE_STRING, opt, ""),
        ],
        "WriteRequest": [
            ("timeseries", 1, f.TYPE_MESSAGE, rep, ".brokle.prompb.TimeSeries"),
            ("metadata", 3, f.TYPE_MESSAGE, rep, ".brokle.prompb.MetricMetadata"),
        ],
    }
    for name, fields in messages.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()  # private: never clashes with other registrations
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("brokle.prompb.WriteRequest"))


def is_stale_marker(value: float) -> bool:
    return value != value and struct.pack("<d", value) == _STALE_BYTES


def decode_remote_write(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    fallback_environment: str | None = None,
) -> MetricBatch:
    """Decode an uncompressed ``WriteRequest`` into series and sample rows."""
    try:
        request = write_request_class().FromString(body)
    except DecodeError as exc:
        raise PayloadDecodeError(f"invalid remote_write protobuf body: {exc}") from None
    out = SeriesCollector(
        scope, received_at, settings.max_future_skew_seconds, fallback_environment
    )
    rejected = Rejections()
    budget = ItemBudget(settings.max_items_per_request, "samples", "series and metadata entries")
    budget.take_containers(len(request.timeseries) + len(request.metadata))
    metadata = {
        m.metric_family_name: (_METADATA_TYPES.get(m.type, "unknown"), m.unit, m.help)
        for m in request.metadata
    }
    env = out.environment()
    window = out.window
    min_ms = window.min_ns // 1_000_000
    max_ms = window.max_ns // 1_000_000
    for series in request.timeseries:
        samples = series.samples
        budget.take(len(samples))
        if series.histograms:
            rejected.add("native histograms are not supported", len(series.histograms))
        if not samples:
            continue
        parsed = _labels(series.labels, settings)
        if isinstance(parsed, str):
            rejected.add(parsed, len(samples))
            continue
        name, labels = parsed
        kind, unit, help_text = _metadata_for(name, labels, metadata)
        sid = series_id(name, labels)
        for sample in samples:
            value: float = sample.value
            if value != value and is_stale_marker(value):
                continue
            ts: int = sample.timestamp
            if ts < min_ms or ts > max_ms:
                rejected.add(window.reject_reason(ts * 1_000_000) or "timestamp out of range")
                continue
            out.add(env, name, labels, ts, value, kind, unit, help_text, sid)
    return out.finish(rejected)


def _labels(raw: Any, settings: IngestSettings) -> tuple[str, dict[str, str]] | str:
    """(metric name, labels without ``__name__``), or why the series is invalid."""
    labels: dict[str, str] = {}
    max_value = settings.max_label_value_chars
    name = ""
    for label in raw:
        key: str = label.name
        value: str = label.value
        if key == "__name__":
            name = value
            continue
        if not _LABEL_NAME.fullmatch(key):
            return f"invalid label name {key[:64]!r}"
        if key in labels:
            return f"duplicate label name {key!r}"
        if not value:
            continue
        if len(value) > max_value:
            return f"label {key!r} value longer than {max_value} characters"
        labels[key] = value
    if not name:
        return "series without a __name__ label"
    if len(name) > MAX_METRIC_NAME_CHARS or not _METRIC_NAME.fullmatch(name):
        return f"invalid metric name {name[:64]!r}"
    if len(labels) + 1 > settings.max_labels:
        return f"more than {settings.max_labels} labels"
    return name, labels


def _metadata_for(
    name: str, labels: dict[str, str], metadata: dict[str, tuple[str, str, str]]
) -> tuple[str, str, str]:
    """Type/unit/help from the request's metadata, else a type guessed from the name."""
    found = metadata.get(name)
    if found is None:
        for suffix in _FAMILY_SUFFIXES:
            if name.endswith(suffix):
                found = metadata.get(name[: -len(suffix)])
                break
    if found is not None:
        return found
    if "le" in labels and name.endswith("_bucket"):
        return "histogram", "", ""
    if "quantile" in labels:
        return "summary", "", ""
    if name.endswith("_total"):
        return "counter", "", ""
    return "unknown", "", ""
