"""The filter catalogs (allow-lists) of each query type, and the request-side name patterns.

Row fields map to span or log columns. The trace, session and user lists add group fields,
computed per group in ``SELECT`` under the ``g_`` aliases (kept apart from column names so an
alias never shadows a column inside an aggregate). Units: durations in milliseconds, cost in
USD, ``ttft`` in milliseconds.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import StringConstraints

from brokle_server.query.filters import Catalog, FieldSpec

NS_PER_MS: Final = 1_000_000.0

# Names a client puts in a request. None of them admits quotes, semicolons, backslashes or
# control characters: such input is refused with a 400 naming the field before any SQL is
# built (values are bound as parameters regardless).
METRIC_NAME_PATTERN: Final = r"^[A-Za-z_:][A-Za-z0-9_:./-]{0,199}$"
DIMENSION_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_.:/-]{0,127}$"
ATTRIBUTE_KEY_PATTERN: Final = r"^[A-Za-z0-9_@][A-Za-z0-9_.:/@-]{0,255}$"
NAME_PATTERN: Final = r"^[^\x00-\x1f'\"`;\\]{1,256}$"
ENVIRONMENT_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,39}$"
TRACE_ID_PATTERN: Final = r"^[0-9a-fA-F]{32}$"
SPAN_ID_PATTERN: Final = r"^[0-9a-fA-F]{16}$"

MetricName = Annotated[str, StringConstraints(pattern=METRIC_NAME_PATTERN)]
Dimension = Annotated[str, StringConstraints(pattern=DIMENSION_PATTERN)]
AttributeKey = Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY_PATTERN)]
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
EnvironmentName = Annotated[str, StringConstraints(pattern=ENVIRONMENT_PATTERN)]
TraceId = Annotated[str, StringConstraints(pattern=TRACE_ID_PATTERN, to_lower=True)]
SpanId = Annotated[str, StringConstraints(pattern=SPAN_ID_PATTERN, to_lower=True)]
FreeText = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]


def _s(column: str) -> FieldSpec:
    return FieldSpec(column, "string")


def _n(column: str, scale: float = 1.0) -> FieldSpec:
    return FieldSpec(column, "number", scale=scale)


SPAN_ROW_FIELDS: Final = {
    "environment": _s("environment"),
    "service": _s("service_name"),
    "name": _s("name"),
    "kind": _s("kind"),
    "status": _s("status_code"),
    "statusMessage": _s("status_message"),
    "spanType": _s("span_type"),
    "level": _s("level"),
    "model": _s("model"),
    "provider": _s("provider"),
    "operation": _s("operation"),
    "userId": _s("user_id"),
    "sessionId": _s("session_id"),
    "apiKeyId": _s("api_key_id"),
    "release": _s("release"),
    "version": _s("version"),
    "traceId": _s("trace_id"),
    "spanId": _s("span_id"),
    "parentSpanId": _s("parent_span_id"),
    "scope": _s("scope_name"),
    "input": _s("input"),
    "output": _s("output"),
    "tags": FieldSpec("tags", "array"),
    "duration": _n("duration_ns", NS_PER_MS),
    "cost": _n("cost_usd"),
    "inputTokens": _n("input_tokens"),
    "outputTokens": _n("output_tokens"),
    "totalTokens": _n("total_tokens"),
    "cachedTokens": _n("cached_tokens"),
    "reasoningTokens": _n("reasoning_tokens"),
    "ttft": _n("ttft_ms"),
}
SPAN_MAPS: Final = {"attributes.": "attributes", "resource.": "resource_attributes"}

SPANS: Final = Catalog("spans", SPAN_ROW_FIELDS, SPAN_MAPS)
ANALYTICS: Final = Catalog("analytics", SPAN_ROW_FIELDS, SPAN_MAPS)


def _g(expr: str, kind: str = "number", scale: float = 1.0) -> FieldSpec:
    return FieldSpec(expr, kind, level="group", scale=scale)  # type: ignore[arg-type]


# Trace fields: the span fields (a trace matches when one of its spans does), with the
# trace's own name, status, duration, cost and token count in their place.
TRACES: Final = Catalog(
    "traces",
    {
        **SPAN_ROW_FIELDS,
        "spanName": _s("name"),
        "name": _g("g_name", "string"),
        "status": _g("g_status", "string"),
        "duration": _g("g_duration_ns", scale=NS_PER_MS),
        "cost": _g("g_cost"),
        "totalTokens": _g("g_tokens"),
        "spans": _g("g_spans"),
        "errors": _g("g_errors"),
    },
    SPAN_MAPS,
)
SESSIONS: Final = Catalog(
    "sessions",
    {
        **SPAN_ROW_FIELDS,
        "duration": _g("g_duration_ns", scale=NS_PER_MS),
        "cost": _g("g_cost"),
        "totalTokens": _g("g_tokens"),
        "traces": _g("g_traces"),
        "spans": _g("g_spans"),
        "errors": _g("g_errors"),
    },
    SPAN_MAPS,
)
USERS: Final = Catalog(
    "users",
    {
        **SPAN_ROW_FIELDS,
        "cost": _g("g_cost"),
        "totalTokens": _g("g_tokens"),
        "traces": _g("g_traces"),
        "sessions": _g("g_sessions"),
        "spans": _g("g_spans"),
        "errors": _g("g_errors"),
    },
    SPAN_MAPS,
)

LOGS: Final = Catalog(
    "logs",
    {
        "environment": _s("environment"),
        "service": _s("service_name"),
        "severity": _s("severity_text"),
        "severityNumber": _n("severity_number"),
        "body": _s("body"),
        "traceId": _s("trace_id"),
        "spanId": _s("span_id"),
        "scope": _s("scope_name"),
    },
    SPAN_MAPS,
)

# Metric filters name a dimension (a series label) directly, as Luminate's do.
METRICS: Final = Catalog("metrics", {}, bare_map="labels")
