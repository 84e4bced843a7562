"""Span rows: the one place a decoded span becomes a tuple in ``SPAN_COLUMNS`` order.

Both OTLP front ends (protobuf and JSON) and the native batch hand their fields here, so
environment resolution, the time window, LLM promotion, span type and level are decided
once. Columns set from the brokle SDK's own attributes:

=========================  ====================================================
column                     attribute
=========================  ====================================================
name                       brokle.span_name, else the span's name
span_type                  brokle.span.type (see :func:`genai.infer_span_type`)
level                      brokle.span.level, else ERROR for error status
user_id                    user.id, enduser.id
session_id                 session.id, gen_ai.conversation.id
tags                       tags, brokle.trace.tags (JSON array text or a list)
release                    brokle.release (span, then resource)
version                    brokle.version, brokle.span.version (span, then resource)
environment                brokle.environment (see :mod:`ingest.common`)
=========================  ====================================================
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.anyvalue import AttrLimits
from brokle_server.ingest.common import (
    NS_PER_MS,
    Row,
    TimeWindow,
    normalize_environment,
    parse_tags,
    resolve_environment,
    resource_environment,
)
from brokle_server.ingest.config import IngestSettings
from brokle_server.ingest.genai import (
    TRUNCATED_COUNT_KEY,
    extract_llm_fields,
    infer_span_type,
)
from brokle_server.store.schema import SPAN_COLUMNS

SPAN_KIND_NAMES: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")
STATUS_NAMES: Final = ("unset", "ok", "error")
_LEVELS: Final = {
    "DEBUG": "DEBUG",
    "DEFAULT": "DEFAULT",
    "INFO": "DEFAULT",
    "WARNING": "WARNING",
    "WARN": "WARNING",
    "ERROR": "ERROR",
}

# The tuple built in build_span_row follows this order; the store owns SPAN_COLUMNS.
_ROW_ORDER: Final = (
    "project_id", "environment", "retention_days", "trace_id", "span_id", "parent_span_id",
    "trace_state", "name", "kind", "service_name", "scope_name", "scope_version", "start_time",
    "end_time", "duration_ns", "status_code", "status_message", "span_type", "level",
    "attributes", "resource_attributes", "event_times", "event_names", "event_attributes",
    "link_trace_ids", "link_span_ids", "provider", "model", "operation", "input_tokens",
    "output_tokens", "total_tokens", "cached_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_usd", "input_cost_usd", "output_cost_usd", "price_version", "ttft_ms", "input",
    "output", "user_id", "session_id", "tags", "api_key_id", "release", "version",
    "ingested_at",
)  # fmt: skip
if tuple(SPAN_COLUMNS) != _ROW_ORDER:  # pragma: no cover - guards a schema change
    raise RuntimeError("store.schema.SPAN_COLUMNS changed; update ingest.spans")


class IngestContext:
    """Per-request constants: tenant, time window and limits, read once per request."""

    __slots__ = (
        "_env_cache",
        "api_key_id",
        "attr_limits",
        "bound_environment",
        "fallback_environment",
        "ingested_ms",
        "io_cap",
        "max_events",
        "max_links",
        "project_id",
        "retention_days",
        "settings",
        "window",
    )

    def __init__(
        self,
        scope: ProjectScope,
        received_at: datetime,
        settings: IngestSettings,
        *,
        api_key_id: str = "",
        fallback_environment: str | None = None,
    ) -> None:
        self.project_id = str(scope.project_id)
        self.bound_environment = scope.environment
        self.fallback_environment = (
            normalize_environment(fallback_environment) if fallback_environment else None
        )
        self.retention_days = scope.retention_days
        self.window = TimeWindow.build(
            received_at, scope.retention_days, settings.max_future_skew_seconds
        )
        self.ingested_ms = self.window.received_ns // NS_PER_MS
        self.api_key_id = api_key_id
        self.settings = settings
        self.attr_limits = AttrLimits(
            settings.max_attributes,
            settings.max_attribute_key_chars,
            settings.max_attribute_value_chars,
        )
        self.io_cap = settings.max_io_chars
        self.max_events = settings.max_span_events
        self.max_links = settings.max_span_links
        self._env_cache: dict[tuple[str | None, str | None], str] = {}

    def environment(self, item_env: str | None, resource_env: str | None) -> str:
        if self.bound_environment:
            return self.bound_environment
        key = (item_env, resource_env)
        env = self._env_cache.get(key)
        if env is None:
            env = resolve_environment(None, item_env, resource_env, self.fallback_environment)
            if len(self._env_cache) < 256:  # a hostile request cannot grow it without bound
                self._env_cache[key] = env
        return env


class ResourceInfo:
    """What a span takes from its resource, computed once per resource."""

    __slots__ = ("attrs", "environment", "release", "service_name", "version")

    def __init__(self, attrs: dict[str, str]) -> None:
        self.attrs = attrs
        self.service_name = attrs.get("service.name", "")
        self.environment = resource_environment(attrs)
        self.release = attrs.get("brokle.release", "")
        self.version = attrs.get("brokle.version", "")


def _promote_event_text(
    names: list[str], attrs: list[dict[str, str]], event: str, key: str, cap: int
) -> str:
    """Older GenAI conventions put the prompt/completion on a span event."""
    for i, name in enumerate(names):
        if name == event:
            text = attrs[i].pop(key, "")
            if text:
                return text[:cap]
    return ""


def build_span_row(
    ctx: IngestContext,
    res: ResourceInfo,
    scope_name: str,
    scope_version: str,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    trace_state: str,
    name: str,
    kind: str,
    start_ns: int,
    end_ns: int,
    status_code: str,
    status_message: str,
    attrs: dict[str, str],
    event_times: list[int],
    event_names: list[str],
    event_attrs: list[dict[str, str]],
    link_trace_ids: list[str],
    link_span_ids: list[str],
) -> Row | str:
    """The span's row, or the reason it is rejected (ids already validated by the caller)."""
    window = ctx.window
    if start_ns <= 0:
        return "span without a start time"
    reason = window.reject_reason(start_ns)
    if reason is not None:
        return reason
    if end_ns < start_ns:
        end_ns = start_ns
    elif end_ns > window.max_ns:
        end_ns = max(start_ns, window.max_ns)

    (
        provider,
        model,
        operation,
        in_tok,
        out_tok,
        total_tok,
        cached_tok,
        cache_write_tok,
        reasoning_tok,
        cost,
        in_cost,
        out_cost,
        price_version,
        ttft_ms,
        text_in,
        text_out,
    ) = extract_llm_fields(attrs, ctx.io_cap, ctx.attr_limits.max_value)
    if event_names and not (text_in and text_out):
        if not text_in:
            text_in = _promote_event_text(
                event_names, event_attrs, "gen_ai.content.prompt", "gen_ai.prompt", ctx.io_cap
            )
        if not text_out:
            text_out = _promote_event_text(
                event_names,
                event_attrs,
                "gen_ai.content.completion",
                "gen_ai.completion",
                ctx.io_cap,
            )

    get = attrs.get
    cap = ctx.attr_limits.max_value
    level = _LEVELS.get((get("brokle.span.level") or "").upper())
    if level is None:
        level = "ERROR" if status_code == "error" else "DEFAULT"
    tags_text = get("tags") or get("brokle.trace.tags")
    return (
        ctx.project_id,
        ctx.environment(get("brokle.environment"), res.environment),
        ctx.retention_days,
        trace_id,
        span_id,
        parent_span_id,
        trace_state[:cap],
        (get("brokle.span_name") or name)[:cap],
        kind,
        res.service_name,
        scope_name,
        scope_version,
        start_ns,
        end_ns,
        end_ns - start_ns,
        status_code,
        status_message[:cap],
        infer_span_type(attrs, operation, provider, model),
        level,
        attrs,
        res.attrs,
        event_times,
        event_names,
        event_attrs,
        link_trace_ids,
        link_span_ids,
        provider,
        model,
        operation,
        in_tok,
        out_tok,
        total_tok,
        cached_tok,
        cache_write_tok,
        reasoning_tok,
        cost,
        in_cost,
        out_cost,
        price_version,
        ttft_ms,
        text_in,
        text_out,
        get("user.id") or get("enduser.id") or "",
        get("session.id") or get("gen_ai.conversation.id") or "",
        parse_tags(tags_text) if tags_text else [],
        ctx.api_key_id,
        get("brokle.release") or res.release,
        get("brokle.version") or get("brokle.span.version") or res.version,
        ctx.ingested_ms,
    )


def note_limits(attrs: dict[str, str], dropped: int, truncated: int) -> None:
    """Record what the limits removed, so a reader can tell data was cut."""
    if dropped:
        attrs["brokle.dropped_attributes_count"] = str(dropped)
    if truncated:
        attrs[TRUNCATED_COUNT_KEY] = str(truncated)
