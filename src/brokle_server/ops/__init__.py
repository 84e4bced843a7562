"""Operating Brokle: logs, request ids, Prometheus metrics, health checks."""
