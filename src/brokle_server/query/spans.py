"""One span row (the columns of :data:`sql_traces.SPAN_DETAIL_COLUMNS`) as the API shows it."""

from __future__ import annotations

from typing import Any

from brokle_server.query.results import number
from brokle_server.query.timerange import NS_PER_MS, iso


def events_out(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": name, "timestamp": iso(int(ts)), "attributes": dict(attrs)}
        for ts, name, attrs in zip(
            row["event_ns"], row["event_names"], row["event_attributes"], strict=False
        )
    ]


def span_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "traceId": row["trace_id"],
        "spanId": row["span_id"],
        "parentSpanId": row["parent_span_id"] or None,
        "name": row["name"],
        "kind": row["kind"],
        "service": row["service_name"],
        "scope": {"name": row["scope_name"], "version": row["scope_version"]},
        "environment": row["environment"],
        "startTime": iso(int(row["start_ns"])),
        "endTime": iso(int(row["end_ns"])),
        "durationMs": int(row["duration_ns"]) / NS_PER_MS,
        "status": row["status_code"],
        "statusMessage": row["status_message"] or None,
        "type": row["span_type"],
        "level": row["level"],
        "model": row["model"] or None,
        "provider": row["provider"] or None,
        "operation": row["operation"] or None,
        "usage": {
            "input": int(row["input_tokens"]),
            "output": int(row["output_tokens"]),
            "total": int(row["total_tokens"]),
            "cached": int(row["cached_tokens"]),
            "cacheWrite": int(row["cache_write_tokens"]),
            "reasoning": int(row["reasoning_tokens"]),
        },
        "cost": {
            "total": number(row["cost_usd"]),
            "input": number(row["input_cost_usd"]),
            "output": number(row["output_cost_usd"]),
            "priceVersion": row["price_version"] or None,
        },
        "ttftMs": number(row["ttft_ms"]),
        "input": row["input"] or None,
        "output": row["output"] or None,
        "userId": row["user_id"] or None,
        "sessionId": row["session_id"] or None,
        "tags": list(row["tags"]),
        "release": row["release"] or None,
        "version": row["version"] or None,
        "attributes": dict(row["attributes"]),
        "resourceAttributes": dict(row["resource_attributes"]),
        "events": events_out(row),
        "links": [
            {"traceId": t, "spanId": s}
            for t, s in zip(row["link_trace_ids"], row["link_span_ids"], strict=False)
        ],
    }
