"""Brokle's own Prometheus metrics, in a registry owned by the app (no globals)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "brokle_http_requests_total",
            "HTTP requests handled, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "brokle_http_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def add_gauges(
        self, name: str, help_text: str, read: Callable[[], dict[str, float]], label: str = "name"
    ) -> None:
        """Expose values read at scrape time (queue depth, pool sizes)."""
        self.registry.register(_GaugeReader(name, help_text, read, label))


class _GaugeReader(Collector):
    def __init__(
        self, name: str, help_text: str, read: Callable[[], dict[str, float]], label: str
    ) -> None:
        self._name, self._help, self._read, self._label = name, help_text, read, label

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self._name, self._help, labels=[self._label])
        for key, value in self._read().items():
            family.add_metric([key], value)
        yield family

    def describe(self) -> Iterable[Metric]:
        return []
