"""OTLP metrics → Prometheus-model series and samples (OTel SDK encoder and OTLP/JSON)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.otlp_metrics import (
    decode_metrics_json,
    decode_metrics_protobuf,
    exponential_bounds,
)
from brokle_server.ingest.series import MetricBatch
from brokle_server.store.schema import SAMPLE_COLUMNS, SERIES_COLUMNS, series_id

from .conftest import NOW, NOW_NS


def samples(batch: MetricBatch) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(metric name, sorted labels): value}, with the series row checked for each sample."""
    series = {
        (r["environment"], r["series_id"]): r
        for r in (dict(zip(SERIES_COLUMNS, row, strict=True)) for row in batch.series)
    }
    out = {}
    for row in batch.samples:
        s = dict(zip(SAMPLE_COLUMNS, row, strict=True))
        meta = series[(s["environment"], s["series_id"])]
        assert meta["metric_name"] == s["metric_name"]
        assert s["series_id"] == series_id(s["metric_name"], meta["labels"])
        out[(s["metric_name"], tuple(sorted(meta["labels"].items())))] = s["value"]
    return out


@pytest.fixture
def meter() -> Iterator[tuple[Any, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create(
            {
                "service.name": "api",
                "service.namespace": "shop",
                "service.instance.id": "pod-1",
                "host.name": "h1",
            }
        ),
        views=[
            View(
                instrument_name="latency_exp",
                aggregation=ExponentialBucketHistogramAggregation(max_size=20),
            )
        ],
    )
    yield provider.get_meter("brokle.test", "1.0"), reader
    provider.shutdown()


def test_sdk_metrics(meter: tuple[Any, InMemoryMetricReader], scope: ProjectScope) -> None:
    m, reader = meter
    m.create_counter("http.requests", unit="{request}").add(3, {"route": "/chat"})
    m.create_up_down_counter("queue.depth").add(-2)
    m.create_histogram("http.server.duration", unit="s").record(0.3, {"route": "/chat"})
    m.create_gauge("cpu.utilization", unit="1").set(0.5)
    exp = m.create_histogram("latency_exp", unit="ms")
    for v in (1.0, 2.0, 4.0, 100.0):
        exp.record(v)
    body = bytes(encode_metrics(reader.get_metrics_data()).SerializeToString())

    batch = decode_metrics_protobuf(body, scope, datetime.now(UTC))
    got = samples(batch)
    base = (
        ("instance", "pod-1"),
        ("job", "shop/api"),
        ("otel_scope_name", "brokle.test"),
        ("otel_scope_version", "1.0"),
    )

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted((*base, *labels.items())))

    assert got[key("http_requests_total", route="/chat")] == 3.0
    assert got[key("queue_depth")] == -2.0
    assert got[key("cpu_utilization_ratio")] == 0.5
    assert got[key("http_server_duration_seconds_count", route="/chat")] == 1.0
    assert got[key("http_server_duration_seconds_sum", route="/chat")] == 0.3
    assert got[key("http_server_duration_seconds_bucket", route="/chat", le="0")] == 0.0
    assert got[key("http_server_duration_seconds_bucket", route="/chat", le="5")] == 1.0
    assert got[key("http_server_duration_seconds_bucket", route="/chat", le="+Inf")] == 1.0
    assert got[key("latency_exp_milliseconds_count")] == 4.0
    assert got[key("latency_exp_milliseconds_bucket", le="+Inf")] == 4.0
    exp_buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (name, labels), v in got.items()
        if name == "latency_exp_milliseconds_bucket" and dict(labels)["le"] != "+Inf"
    )
    assert exp_buckets[-1][1] == 4.0
    assert any(le >= 100.0 for le, _ in exp_buckets)
    # target_info carries the other resource attributes.
    info = [labels for (name, labels) in got if name == "target_info"]
    assert info and ("host_name", "h1") in info[0]
    types = {
        dict(zip(SERIES_COLUMNS, r, strict=True))["metric_name"]: dict(
            zip(SERIES_COLUMNS, r, strict=True)
        )["metric_type"]
        for r in batch.series
    }
    assert types["http_requests_total"] == "counter"
    assert types["queue_depth"] == "gauge"
    assert types["http_server_duration_seconds_bucket"] == "histogram"
    assert types["target_info"] == "gauge"

    as_json = orjson.dumps(MessageToDict(ExportMetricsServiceRequest.FromString(body)))
    assert samples(decode_metrics_json(as_json, scope, datetime.now(UTC))) == got


def test_suffixes_can_be_turned_off(
    meter: tuple[Any, InMemoryMetricReader], scope: ProjectScope
) -> None:
    m, reader = meter
    m.create_counter("http.requests", unit="{request}").add(1)
    body = bytes(encode_metrics(reader.get_metrics_data()).SerializeToString())
    settings = IngestSettings(otlp_metric_suffixes=False)
    names = {
        n
        for n, _ in samples(
            decode_metrics_protobuf(body, scope, datetime.now(UTC), settings=settings)
        )
    }
    assert "http_requests" in names


def _metric_request(points: list[dict[str, Any]], kind: str = "gauge") -> bytes:
    doc = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"name": "m", kind: {"dataPoints": points}}]}]}
        ]
    }
    return orjson.dumps(doc)


def test_summary_delta_sum_flags_window_and_labels(scope: ProjectScope) -> None:
    summary = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [
                        {"key": "deployment.environment", "value": {"stringValue": "Canary"}}
                    ]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "rpc.latency",
                                "summary": {
                                    "dataPoints": [
                                        {
                                            "timeUnixNano": str(NOW_NS),
                                            "count": "10",
                                            "sum": 5.5,
                                            "quantileValues": [
                                                {"quantile": 0.5, "value": 0.4},
                                                {"quantile": 0.99, "value": 2.0},
                                            ],
                                        }
                                    ]
                                },
                            },
                            {
                                "name": "bytes.sent",
                                "unit": "By",
                                "sum": {
                                    "aggregationTemporality": 1,
                                    "isMonotonic": True,
                                    "dataPoints": [{"timeUnixNano": str(NOW_NS), "asInt": "100"}],
                                },
                            },
                            {
                                "name": "g",
                                "gauge": {
                                    "dataPoints": [
                                        {"timeUnixNano": str(NOW_NS), "asDouble": 1, "flags": 1},
                                        {"timeUnixNano": str(NOW_NS + 7200 * 10**9), "asDouble": 2},
                                        {
                                            "timeUnixNano": str(NOW_NS),
                                            "asDouble": "Infinity",
                                            "attributes": [
                                                {"key": "a.b", "value": {"stringValue": "1"}},
                                                {"key": "a-b", "value": {"stringValue": "2"}},
                                                {"key": "9x", "value": {"stringValue": "3"}},
                                            ],
                                        },
                                    ]
                                },
                            },
                        ]
                    }
                ],
            }
        ]
    }
    batch = decode_metrics_json(orjson.dumps(summary), scope, NOW)
    got = samples(batch)
    assert got[("rpc_latency", (("quantile", "0.5"),))] == 0.4
    assert got[("rpc_latency", (("quantile", "0.99"),))] == 2.0
    assert got[("rpc_latency_sum", ())] == 5.5
    assert got[("rpc_latency_count", ())] == 10.0
    assert got[("bytes_sent", ())] == 100.0  # delta: a gauge, no _total; "bytes" already in name
    assert got[("g", (("a_b", "2;1"), ("key_9x", "3")))] == math.inf
    assert batch.rejected.reasons == {"timestamp more than 3600s in the future": 1}
    assert {dict(zip(SERIES_COLUMNS, r, strict=True))["environment"] for r in batch.series} == {
        "canary"
    }


def test_too_many_labels_and_bad_histograms(scope: ProjectScope) -> None:
    attrs = [{"key": f"k{i}", "value": {"stringValue": "v"}} for i in range(70)]
    batch = decode_metrics_json(
        _metric_request([{"timeUnixNano": str(NOW_NS), "asInt": 1, "attributes": attrs}]),
        scope,
        NOW,
    )
    assert batch.samples == [] and batch.rejected.count == 1
    bad = _metric_request(
        [
            {
                "timeUnixNano": str(NOW_NS),
                "count": 3,
                "bucketCounts": [1, 2],
                "explicitBounds": [1, 2, 3],
            }
        ],
        "histogram",
    )
    batch = decode_metrics_json(bad, scope, NOW)
    assert batch.samples == [] and batch.rejected.count == 1


def test_exponential_bounds() -> None:
    # scale 0: bucket i covers (2**i, 2**(i+1)]
    pairs = exponential_bounds(0, 1, 0.0, (0, [1, 2, 0, 3]), (1, [4]), max_scale=3)
    assert pairs == [(-2.0, 4), (0.0, 5), (2.0, 6), (4.0, 8), (16.0, 11)]
    # scale 2 merged down to scale 1: indices 0..3 at scale 2 -> 0..1 at scale 1
    merged = exponential_bounds(2, 0, 0.0, (0, [1, 1, 1, 1]), (0, []), max_scale=1)
    assert merged == [(0.0, 0), (pytest.approx(2**0.5), 2), (2.0, 4)]
    # a huge spread is merged until at most 160 buckets remain
    wide = exponential_bounds(20, 0, 0.0, (-(2**24), [1] * 4000), (0, []), max_scale=20)
    assert len(wide) <= 161
    # a value near the top of float range becomes +Inf and is dropped by the caller
    top = exponential_bounds(0, 0, 0.0, (1023, [1, 1]), (0, []), max_scale=0)
    assert top[-1] == (math.inf, 2)


def test_exponential_histogram_scale_outside_the_spec_is_rejected(scope: ProjectScope) -> None:
    def point(scale: int) -> dict[str, Any]:
        return {
            "timeUnixNano": str(NOW_NS),
            "scale": scale,
            "count": 3,
            "sum": 4.0,
            "positive": {"offset": 1, "bucketCounts": [1, 2]},
        }

    body = _metric_request(
        [point(-2000), point(-11), point(-10), point(20), point(21), point(-(2**31))],
        "exponentialHistogram",
    )
    batch = decode_metrics_json(body, scope, NOW)
    assert batch.rejected.reasons == {"exponential histogram scale must be -10 to 20": 4}
    got = samples(batch)
    assert got[("m_count", ())] == 3.0  # the two points in range (same series) were kept
    assert got[("m_bucket", (("le", "+Inf"),))] == 3.0
    # Protobuf takes the same path.
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    metric.exponential_histogram.data_points.add(time_unix_nano=NOW_NS, scale=-2000, count=1)
    batch = decode_metrics_protobuf(request.SerializeToString(), scope, NOW)
    assert batch.samples == [] and batch.rejected.count == 1
    for scale in (-11, 21, -2000):
        with pytest.raises(ValueError, match="scale must be"):
            exponential_bounds(scale, 0, 0.0, (0, [1]), (0, []), max_scale=3)
