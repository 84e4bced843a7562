"""Retry hints, error bodies, SSE parsing and the Usage arithmetic the providers rely on."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from brokle_server.gateway.providers.http import (
    describe_error_body,
    iter_sse,
    parse_retry_after,
)
from brokle_server.gateway.types import UpstreamError, Usage


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": "soon"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers) == expected


def test_parse_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    value = parse_retry_after({"retry-after": when})
    assert value is not None and 25 <= value <= 31


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"message": "m", "type": "t", "code": "c"}}', ("m", "t", None)),
        (
            b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}',
            ("busy", "overloaded_error", None),
        ),
        (
            b'{"error": {"code": 429, "message": "q", "status": "RESOURCE_EXHAUSTED", "details": '
            b'[{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12s"}]}}',
            ("q", "RESOURCE_EXHAUSTED", 12.0),
        ),
        (b'{"error": "plain"}', ("plain", None, None)),
        (b"Bad Gateway", ("Bad Gateway", None, None)),
        (b"", (None, None, None)),
    ],
)
def test_describe_error_body(body: bytes, expected: tuple[object, ...]) -> None:
    assert describe_error_body(body) == expected


async def test_iter_sse_handles_crlf_comments_and_multiline_data() -> None:
    raw = (
        b": keep-alive\r\n\r\n"
        b"event: a\r\ndata: 1\r\n\r\n"
        b"data: x\ndata: y\n\n"
        b"id: 5\ndata:no-space\n\n"
        b"data: tail"
    )
    response = httpx.Response(200, content=raw)
    events = [event async for event in iter_sse(response)]
    assert events == [("a", "1"), (None, "x\ny"), (None, "no-space"), (None, "tail")]


def test_usage_round_trips_through_anthropic_accounting() -> None:
    anthropic_usage = {
        "input_tokens": 10,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 30,
        "output_tokens": 20,
        "output_tokens_details": {"thinking_tokens": 5},
    }
    usage = Usage.from_anthropic(anthropic_usage)
    assert usage == Usage(100, 20, cached_tokens=60, cache_write_tokens=30, reasoning_tokens=5)
    assert usage.to_anthropic() == {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 30,
    }
    assert Usage.from_openai(usage.to_openai()) == usage
    assert usage.total_tokens == 120


def test_usage_from_openai_variants() -> None:
    assert Usage.from_openai(None) == Usage()
    assert Usage.from_openai({"prompt_tokens": 9, "total_tokens": 9}) == Usage(9)
    deepseek = {"prompt_tokens": 50, "completion_tokens": 5, "prompt_cache_hit_tokens": 32}
    assert Usage.from_openai(deepseek).cached_tokens == 32
    junk = {"prompt_tokens": "many", "completion_tokens": True, "prompt_tokens_details": None}
    assert Usage.from_openai(junk) == Usage()


def test_mid_stream_errors_are_never_retryable() -> None:
    error = UpstreamError("x", provider="p", status=503, retryable=True, mid_stream=True)
    assert not error.retryable
    assert error.details == {"provider": "p", "status": 503}
    assert "mid_stream=True" in repr(error)
