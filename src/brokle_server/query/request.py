"""The body of ``POST /api/v1/query``: one model per ``queryType``, and the dispatch to readers.

Each model carries an example in the OpenAPI schema (:data:`EXAMPLES`, shown per type in
``/docs``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import Field

from brokle_server.query import analytics, logs, metrics, traces
from brokle_server.query.models_metrics import AggregateQuery, RangeQuery, RateQuery
from brokle_server.query.models_traces import SessionsQuery, TraceQuery, TracesQuery, UsersQuery
from brokle_server.query.models_usage import AnalyticsQuery, LogsQuery
from brokle_server.query.results import QueryResult
from brokle_server.query.scope import TenantReader

QueryRequest = Annotated[
    AggregateQuery
    | RangeQuery
    | RateQuery
    | TracesQuery
    | TraceQuery
    | SessionsQuery
    | UsersQuery
    | AnalyticsQuery
    | LogsQuery,
    Field(discriminator="queryType"),
]

_MODELS: Final = (
    AggregateQuery,
    RangeQuery,
    RateQuery,
    TracesQuery,
    TraceQuery,
    SessionsQuery,
    UsersQuery,
    AnalyticsQuery,
    LogsQuery,
)


def _example(model: type[Any]) -> dict[str, Any]:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict)
    examples = extra["examples"]
    assert isinstance(examples, list)
    example: dict[str, Any] = examples[0]
    return example


EXAMPLES: Final = {_example(m)["queryType"]: _example(m) for m in _MODELS}
OPENAPI_EXAMPLES: Final = {
    name: {"summary": f"queryType: {name}", "value": body} for name, body in EXAMPLES.items()
}

Reader = Callable[[TenantReader, Any, datetime], Awaitable[QueryResult]]
READERS: Final[dict[str, Reader]] = {
    "aggregate": metrics.aggregate,
    "range": metrics.series,
    "rate": metrics.series,
    "traces": traces.list_traces,
    "trace": traces.get_trace,
    "sessions": traces.list_sessions,
    "users": traces.list_users,
    "analytics": analytics.run,
    "logs": logs.run,
}


async def run_query(reader: TenantReader, request: Any, now: datetime) -> QueryResult:
    """Run one validated request (a member of :data:`QueryRequest`) for the reader's tenant."""
    return await READERS[request.queryType](reader, request, now)
