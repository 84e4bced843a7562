"""OTLP metrics (``ExportMetricsServiceRequest``) → Prometheus-model series and samples.

==========================  ==============================================================
OTLP                        rows (names per :mod:`ingest.promnames`)
==========================  ==============================================================
Gauge                       ``name`` — gauge
Sum, monotonic, cumulative  ``name_total`` — counter
Sum, otherwise              ``name`` — gauge (a delta sum is kept per interval: no state
                            is kept here to accumulate it)
Histogram                   ``name_bucket{le=..}`` (cumulative), ``name_sum``,
                            ``name_count`` — histogram
ExponentialHistogram        the same, with ``le`` bounds computed from the scale after
                            merging down to ``exponential_histogram_max_scale`` (and
                            further, to at most 160 buckets); empty buckets are skipped
Summary                     ``name{quantile=..}``, ``name_sum``, ``name_count`` — summary
==========================  ==============================================================

Labels are the data point's attributes, plus ``job`` (``service.namespace/service.name``)
and ``instance`` (``service.instance.id``) from the resource, and ``otel_scope_name`` /
``otel_scope_version``. Every resource also yields one ``target_info`` gauge (value 1)
carrying its other attributes, as the OTel→Prometheus rules describe. The environment is
the key's, else the resource's ``deployment.environment[.name]``, else the fallback.

A data point whose time is outside the window, or with more than ``max_labels`` labels, is
rejected and counted (``rejected_data_points``). Points flagged ``NO_RECORDED_VALUE`` are
skipped silently (they are staleness markers, not data).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Final

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.anyvalue import AttrLimits, pb_attributes
from brokle_server.ingest.common import (
    NS_PER_MS,
    ItemBudget,
    Rejections,
    resource_environment,
)
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.decode import PayloadDecodeError, load_json_object
from brokle_server.ingest.otlp_json import json_array, json_to_message
from brokle_server.ingest.promnames import format_float, prometheus_metric_name, sanitize_labels
from brokle_server.ingest.series import MetricBatch, SeriesCollector

_DEFAULT_SETTINGS: Final = IngestSettings()
_CUMULATIVE: Final = 2
_NO_RECORDED_VALUE: Final = 1
_MAX_EXP_BUCKETS: Final = 160
# The scales the OTLP data model defines for exponential histograms; outside them the bucket
# bounds are meaningless (and 2 ** -scale overflows a float below about -1023).
MIN_EXP_SCALE: Final = -10
MAX_EXP_SCALE: Final = 20
MAX_METRIC_NAME_CHARS: Final = 512
_CONTAINERS: Final = "resource, scope and metric entries"  # counted apart from data points
# Metric.data's members as OTLP/JSON keys (lowerCamelCase and snake_case).
_JSON_DATA_KEYS: Final = (
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "exponential_histogram",
    "summary",
)
_RESOURCE_LABEL_KEYS: Final = frozenset(
    {"service.name", "service.namespace", "service.instance.id"}
)


def decode_metrics_protobuf(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    fallback_environment: str | None = None,
) -> MetricBatch:
    """Decode a protobuf ``ExportMetricsServiceRequest`` into series and sample rows."""
    try:
        request = ExportMetricsServiceRequest.FromString(body)
    except DecodeError as exc:
        raise PayloadDecodeError(f"invalid OTLP protobuf metrics body: {exc}") from None
    return _Decoder(scope, received_at, settings, fallback_environment).run(request)


def decode_metrics_json(
    body: bytes,
    scope: ProjectScope,
    received_at: datetime,
    *,
    settings: IngestSettings = _DEFAULT_SETTINGS,
    fallback_environment: str | None = None,
) -> MetricBatch:
    """Decode an OTLP/JSON ``ExportMetricsServiceRequest`` into series and sample rows."""
    doc = load_json_object(body, "OTLP JSON metrics")
    _charge_json(doc, ItemBudget(settings.max_items_per_request, "data points", _CONTAINERS))
    request = ExportMetricsServiceRequest()
    json_to_message(doc, request, "OTLP JSON metrics")
    return _Decoder(scope, received_at, settings, fallback_environment).run(request)


def _charge_json(doc: dict[str, Any], budget: ItemBudget) -> None:
    """Charge what :meth:`_Decoder.run` will, before the conversion: too many is refused early."""
    resource_metrics_list = json_array(doc, "resourceMetrics", "resource_metrics")
    budget.take_containers(len(resource_metrics_list))
    for resource_metrics in resource_metrics_list:
        scope_metrics_list = json_array(resource_metrics, "scopeMetrics", "scope_metrics")
        budget.take_containers(len(scope_metrics_list))
        for scope_metrics in scope_metrics_list:
            metrics = json_array(scope_metrics, "metrics", "metrics")
            budget.take_containers(len(metrics))
            for metric in metrics:
                if not isinstance(metric, dict):
                    continue
                for key in _JSON_DATA_KEYS:
                    data = metric.get(key)
                    if data is not None:
                        budget.take(len(json_array(data, "dataPoints", "data_points")))


class _Decoder:
    def __init__(
        self,
        scope: ProjectScope,
        received_at: datetime,
        settings: IngestSettings,
        fallback_environment: str | None,
    ) -> None:
        self.out = SeriesCollector(
            scope, received_at, settings.max_future_skew_seconds, fallback_environment
        )
        self.settings = settings
        self.limits = AttrLimits(
            settings.max_attributes,
            settings.max_attribute_key_chars,
            settings.max_label_value_chars,
        )
        self.rejected = Rejections()
        self.budget = ItemBudget(settings.max_items_per_request, "data points", _CONTAINERS)
        # Per-resource state, set in run().
        self.env = ""
        self.base_labels: dict[str, str] = {}

    def run(self, request: Any) -> MetricBatch:
        budget = self.budget
        resource_metrics_list = request.resource_metrics
        budget.take_containers(len(resource_metrics_list))
        for resource_metrics in resource_metrics_list:
            scope_metrics_list = resource_metrics.scope_metrics
            budget.take_containers(len(scope_metrics_list))
            attrs: dict[str, str] = {}
            pb_attributes(resource_metrics.resource.attributes, self.limits, attrs)
            self.env = self.out.environment(resource_environment(attrs))
            self.base_labels = _resource_labels(attrs)
            latest_ms = 0
            for scope_metrics in scope_metrics_list:
                metrics = scope_metrics.metrics
                budget.take_containers(len(metrics))
                labels = dict(self.base_labels)
                inst = scope_metrics.scope
                if inst.name:
                    labels["otel_scope_name"] = inst.name
                    if inst.version:
                        labels["otel_scope_version"] = inst.version
                for metric in metrics:
                    latest_ms = max(latest_ms, self._metric(metric, labels))
            if latest_ms:
                self._target_info(attrs, latest_ms)
        return self.out.finish(self.rejected)

    def _target_info(self, attrs: dict[str, str], ts_ms: int) -> None:
        info = {k: v for k, v in attrs.items() if k not in _RESOURCE_LABEL_KEYS}
        labels = sanitize_labels(info, self.settings.max_label_value_chars)
        labels.update(self.base_labels)
        if len(labels) <= self.settings.max_labels and len(labels) > len(self.base_labels):
            self.out.add(self.env, "target_info", labels, ts_ms, 1.0, "gauge")

    def _metric(self, metric: Any, scope_labels: dict[str, str]) -> int:
        """Adds the metric's points; returns the latest accepted time in ms (0 if none)."""
        which = metric.WhichOneof("data")
        if which is None:
            return 0
        data = getattr(metric, which)
        self.budget.take(len(data.data_points))
        if not metric.name or len(metric.name) > MAX_METRIC_NAME_CHARS:
            reason = f"metric name must be 1 to {MAX_METRIC_NAME_CHARS} characters"
            self.rejected.add(reason, len(data.data_points))
            return 0
        suffixes = self.settings.otlp_metric_suffixes
        if which == "sum":
            counter = data.is_monotonic and data.aggregation_temporality == _CUMULATIVE
            kind = "counter" if counter else "gauge"
        else:
            kind = {"gauge": "gauge", "summary": "summary"}.get(which, "histogram")
        name = prometheus_metric_name(metric.name, metric.unit, kind, suffixes)
        meta = (kind, metric.unit, metric.description)
        latest = 0
        for point in data.data_points:
            if point.flags & _NO_RECORDED_VALUE:
                continue
            ts_ms = self._point_time(point)
            if not ts_ms:
                continue
            attrs: dict[str, str] = {}
            pb_attributes(point.attributes, self.limits, attrs)
            labels = sanitize_labels(attrs, self.settings.max_label_value_chars)
            labels.update(scope_labels)
            if len(labels) + 1 > self.settings.max_labels:
                self.rejected.add(f"more than {self.settings.max_labels} labels")
                continue
            if which in ("gauge", "sum"):
                value = (
                    point.as_double
                    if point.WhichOneof("value") == "as_double"
                    else float(point.as_int)
                )
                self._add(name, labels, ts_ms, value, meta)
            elif which == "histogram":
                if not self._histogram(name, labels, ts_ms, point, meta):
                    continue
            elif which == "exponential_histogram":
                if not self._exp_histogram(name, labels, ts_ms, point, meta):
                    continue
            else:
                for q in point.quantile_values:
                    ql = {**labels, "quantile": format_float(q.quantile)}
                    self._add(name, ql, ts_ms, q.value, meta)
                self._add(f"{name}_sum", labels, ts_ms, point.sum, meta)
                self._add(f"{name}_count", labels, ts_ms, float(point.count), meta)
            latest = max(latest, ts_ms)
        return latest

    def _point_time(self, point: Any) -> int:
        ts_ns: int = point.time_unix_nano or self.out.window.received_ns
        reason = self.out.window.reject_reason(ts_ns)
        if reason is not None:
            self.rejected.add(reason)
            return 0
        return ts_ns // NS_PER_MS

    def _add(
        self,
        name: str,
        labels: dict[str, str],
        ts_ms: int,
        value: float,
        meta: tuple[str, str, str],
    ) -> None:
        self.out.add(self.env, name, labels, ts_ms, value, *meta)

    def _buckets(
        self,
        name: str,
        labels: dict[str, str],
        ts_ms: int,
        bounds: list[tuple[float, int]],
        count: int,
        total: float | None,
        meta: tuple[str, str, str],
    ) -> None:
        bucket = f"{name}_bucket"
        for upper, cumulative in bounds:
            if upper == math.inf:  # the +Inf bucket is always the total count, added below
                continue
            self._add(bucket, {**labels, "le": format_float(upper)}, ts_ms, float(cumulative), meta)
        self._add(bucket, {**labels, "le": "+Inf"}, ts_ms, float(count), meta)
        if total is not None:
            self._add(f"{name}_sum", labels, ts_ms, total, meta)
        self._add(f"{name}_count", labels, ts_ms, float(count), meta)

    def _histogram(
        self, name: str, labels: dict[str, str], ts_ms: int, point: Any, meta: tuple[str, str, str]
    ) -> bool:
        bounds = list(point.explicit_bounds)
        counts = list(point.bucket_counts)
        if counts and len(counts) != len(bounds) + 1:
            self.rejected.add("histogram bucket_counts must have one more entry than bounds")
            return False
        cumulative = 0
        pairs: list[tuple[float, int]] = []
        for upper, n in zip(bounds, counts, strict=False):
            cumulative += n
            pairs.append((upper, cumulative))
        total = point.sum if point.HasField("sum") else None
        self._buckets(name, labels, ts_ms, pairs, point.count, total, meta)
        return True

    def _exp_histogram(
        self, name: str, labels: dict[str, str], ts_ms: int, point: Any, meta: tuple[str, str, str]
    ) -> bool:
        scale: int = point.scale
        if not MIN_EXP_SCALE <= scale <= MAX_EXP_SCALE:
            self.rejected.add(
                f"exponential histogram scale must be {MIN_EXP_SCALE} to {MAX_EXP_SCALE}"
            )
            return False
        pairs = exponential_bounds(
            scale,
            point.zero_count,
            point.zero_threshold,
            (point.positive.offset, list(point.positive.bucket_counts)),
            (point.negative.offset, list(point.negative.bucket_counts)),
            self.settings.exponential_histogram_max_scale,
        )
        total = point.sum if point.HasField("sum") else None
        self._buckets(name, labels, ts_ms, pairs, point.count, total, meta)
        return True


def _resource_labels(attrs: dict[str, str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    service = attrs.get("service.name")
    if service:
        namespace = attrs.get("service.namespace")
        labels["job"] = f"{namespace}/{service}" if namespace else service
    instance = attrs.get("service.instance.id")
    if instance:
        labels["instance"] = instance
    return labels


def _merge(offset: int, counts: list[int], shift: int) -> dict[int, int]:
    merged: dict[int, int] = {}
    for k, n in enumerate(counts):
        if n:
            index = (offset + k) >> shift
            merged[index] = merged.get(index, 0) + n
    return merged


def _halve(buckets: dict[int, int]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for index, n in buckets.items():
        merged[index >> 1] = merged.get(index >> 1, 0) + n
    return merged


def _power(base_exp: float) -> float:
    try:
        return float(2.0**base_exp)
    except OverflowError:
        return math.inf


def exponential_bounds(
    scale: int,
    zero_count: int,
    zero_threshold: float,
    positive: tuple[int, list[int]],
    negative: tuple[int, list[int]],
    max_scale: int,
) -> list[tuple[float, int]]:
    """(upper bound, cumulative count) pairs for an exponential histogram, without +Inf.

    Bucket ``i`` at scale ``s`` holds values in ``(2**(i/2**s), 2**((i+1)/2**s)]``;
    lowering the scale by one merges buckets pairwise (``i >> 1``). ``scale`` must be within
    ``MIN_EXP_SCALE..MAX_EXP_SCALE`` (``ValueError`` otherwise).
    """
    if not MIN_EXP_SCALE <= scale <= MAX_EXP_SCALE:
        raise ValueError(f"exponential histogram scale must be {MIN_EXP_SCALE} to {MAX_EXP_SCALE}")
    shift = max(0, scale - max_scale)
    pos = _merge(positive[0], positive[1], shift)
    neg = _merge(negative[0], negative[1], shift)
    while len(pos) + len(neg) > _MAX_EXP_BUCKETS:
        shift += 1
        pos = _halve(pos)
        neg = _halve(neg)
    factor = 2.0 ** -(scale - shift)  # exponent step per bucket index
    pairs: list[tuple[float, int]] = []
    cumulative = 0
    for index in sorted(neg, reverse=True):  # most negative values first
        cumulative += neg[index]
        pairs.append((-_power(index * factor), cumulative))
    cumulative += zero_count
    pairs.append((max(zero_threshold, 0.0), cumulative))
    for index in sorted(pos):
        cumulative += pos[index]
        pairs.append((_power((index + 1) * factor), cumulative))
    return pairs
