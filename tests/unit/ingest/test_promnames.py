"""OTel → Prometheus naming rules."""

from __future__ import annotations

import pytest

from brokle_server.ingest.promnames import (
    format_float,
    prometheus_metric_name,
    sanitize_label_name,
    sanitize_labels,
    sanitize_metric_name,
)


@pytest.mark.parametrize(
    ("name", "unit", "kind", "expected"),
    [
        ("http.server.duration", "s", "histogram", "http_server_duration_seconds"),
        (
            "http.server.request.duration_seconds",
            "s",
            "histogram",
            "http_server_request_duration_seconds",
        ),
        ("system.memory.usage", "By", "gauge", "system_memory_usage_bytes"),
        ("http.requests", "{request}", "counter", "http_requests_total"),
        ("requests_total", "1", "counter", "requests_total"),
        ("cpu.utilization", "1", "gauge", "cpu_utilization_ratio"),
        ("net.io", "By/s", "gauge", "net_io_bytes_per_second"),
        ("rate", "1/s", "gauge", "rate_per_second"),
        ("disk.space", "MiBy", "gauge", "disk_space_mebibytes"),
        ("temp", "Cel", "gauge", "temp_celsius"),
        ("odd", "foo bar", "gauge", "odd_foo_bar"),
        ("2xx.count", "", "counter", "_2xx_count_total"),
        ("a..b--c", "", "gauge", "a_b_c"),
    ],
)
def test_metric_names(name: str, unit: str, kind: str, expected: str) -> None:
    assert prometheus_metric_name(name, unit, kind, True) == expected


def test_without_suffixes() -> None:
    assert prometheus_metric_name("http.requests", "{request}", "counter", False) == "http_requests"
    assert sanitize_metric_name("ns:metric.name") == "ns:metric_name"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("service.name", "service_name"),
        ("9lives", "key_9lives"),
        ("__secret", "key__secret"),
        ("ok_label", "ok_label"),
        ("", "key_empty"),
        ("é", "_"),
    ],
)
def test_label_names(key: str, expected: str) -> None:
    assert sanitize_label_name(key) == expected


def test_labels_collide_and_are_cut() -> None:
    assert sanitize_labels({"b.c": "2", "b_c": "1", "x": "long"}, 2) == {"b_c": "2;1", "x": "lo"}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.25, "0.25"),
        (float("inf"), "+Inf"),
        (float("-inf"), "-Inf"),
        (1e20, "1e+20"),
        (-2.0, "-2"),
        (float("nan"), "NaN"),
    ],
)
def test_format_float(value: float, text: str) -> None:
    assert format_float(value) == text
