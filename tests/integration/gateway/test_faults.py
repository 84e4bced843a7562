"""Upstream faults and the gateway's defences, through the OpenAI SDK: Retry-After, 5xx
retries then fallback, timeouts, the circuit breaker, mid-stream failures, routing
strategies over many calls, the exact cache and budgets under concurrency, per-key RPM/TPM,
W3C ``traceparent`` and the ``routing.decision`` event."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import pytest_asyncio

from tests.conftest import running_app
from tests.fakes.script import FakeUsage, Fault, Reply
from tests.fakes.upstreams import FakeUpstream
from tests.integration.gateway import test_anthropic_sdk as shared
from tests.integration.gateway.conftest import Gateway
from tests.integration.gateway.test_anthropic_sdk import (
    CLAUDE,
    GEMINI,
    OPENAI,
    SharedApp,
    admin_login,
    gateway_app_settings,
    project_gateway,
    span_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")
# This module's own app (module scope), and a fresh project on it per test.
shared_app = shared.shared_app
gateway = shared.gateway

HI: Any = [{"role": "user", "content": "hi"}]


def sdk(gw: Gateway, key: str | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=key or gw.key,
        base_url="http://brokle.test/v1",
        http_client=gw.http_client(),
        max_retries=0,
    )


async def chat(client: openai.AsyncOpenAI, model: str, **kwargs: Any) -> Any:
    """A raw chat completion response (headers + parse())."""
    kwargs.setdefault("messages", HI)
    return await client.chat.completions.with_raw_response.create(model=model, **kwargs)


async def route(gw: Gateway, alias: str, *targets: tuple[str, str], **fields: Any) -> None:
    body = {
        "model": alias,
        "targets": [{"provider": p, "model": m} for p, m in targets],
        **fields,
    }
    await gw.api("POST", "/routes", body)


async def project_spans(gw: Gateway, where: str, expected: int) -> list[dict[str, Any]]:
    store = gw.client.app.state.services.telemetry.store  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = await store.aquery_dicts(
            f"SELECT * FROM spans WHERE project_id = {{p:String}} AND {where}",
            {"p": gw.project_id},
        )
        if len(rows) >= expected:
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {expected} spans where {where}, found {len(rows)}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def tuned_app(
    tmp_path_factory: pytest.TempPathFactory, shared_store_url: str
) -> AsyncIterator[SharedApp]:
    """A second app whose breaker opens after 2 failures for 1 s and whose backoff may
    wait up to 2 s (long enough to honour a short Retry-After)."""
    settings = gateway_app_settings(
        tmp_path_factory.mktemp("tuned") / "data",
        breaker_failures=2,
        breaker_cooldown_s=1.0,
        backoff_max_ms=2000,
    )
    async with running_app(settings) as client:
        admin = await admin_login(client)
        orgs = (await client.get("/api/v1/organizations", headers=admin)).json()["data"]
        yield SharedApp(client, admin, orgs[0]["id"])


@pytest_asyncio.fixture(loop_scope="module")
async def tuned(tuned_app: SharedApp, fake_upstream: FakeUpstream) -> Gateway:
    return await project_gateway(tuned_app.client, tuned_app.admin, tuned_app.org_id, fake_upstream)


# -- retries ----------------------------------------------------------------------------


async def test_retry_after_is_honoured_for_every_upstream(tuned: Gateway) -> None:
    gw = tuned  # breaker: 2 failures, 1 s cooldown; backoff up to 2 s
    client = sdk(gw)
    cases = [
        (OPENAI, Fault(status=429, retry_after=0.3)),
        (OPENAI, Fault(status=503, retry_after_ms=300)),
        (CLAUDE, Fault(status=429, retry_after=0.3)),
        (CLAUDE, Fault(status=529, retry_after=0.3)),
        (GEMINI, Fault(status=429, retry_after=0.3)),  # RetryInfo in the body too
    ]
    for family, fault in cases:
        gw.fake.fail(fault, model=family.upstream_model, times=1)
        before = gw.fake.count(family.route)
        started = time.perf_counter()
        raw = await chat(client, family.model)
        elapsed = time.perf_counter() - started
        assert gw.fake.count(family.route) - before == 2, (family.model, fault)
        # The retry waited for Retry-After (the backoff alone is at most 1 ms) ...
        assert elapsed >= 0.3, (family.model, fault, elapsed)
        # ... and not much longer.
        assert elapsed < 1.5, (family.model, fault, elapsed)
        assert raw.parse().choices[0].message.content == "Echo: hi"
        span = await span_of(gw, raw.headers["x-brokle-trace-id"])
        assert span["attributes"]["brokle.gateway.attempts"] == "2"
        assert span["status_code"] == "ok"


async def test_retry_after_beyond_the_backoff_cap_is_not_cut_short(gateway: Gateway) -> None:
    # The fixture's backoff cap is 20 ms; the upstream asks for 5 s.
    gateway.fake.fail(Fault(status=429, retry_after=5), model="m", times=1)
    started = time.perf_counter()
    with contextlib.suppress(openai.RateLimitError):  # giving up respects Retry-After too
        await chat(sdk(gateway), "oai/m")
    elapsed = time.perf_counter() - started
    assert gateway.fake.count("openai.chat") == 1 or elapsed >= 5, (
        f"upstream called {gateway.fake.count('openai.chat')} times within {elapsed:.2f}s"
    )


async def test_upstream_429_passes_its_retry_after_to_the_client(gateway: Gateway) -> None:
    gateway.fake.fail(Fault(status=429, retry_after=7), model="m", times=None)
    with pytest.raises(openai.RateLimitError) as info:
        await chat(sdk(gateway), "oai/m")
    assert info.value.code == "upstream_rate_limited"
    assert info.value.response.headers.get("retry-after") == "7"


async def test_server_errors_are_retried_then_fall_back(gateway: Gateway) -> None:
    await route(gateway, "resilient", ("claude", "flaky"), ("gem", "steady"), retries=2)
    await route(gateway, "resilient-stream", ("oai", "broken"), ("claude", "sturdy"), retries=2)
    await route(gateway, "doomed", ("oai", "down"), retries=1)
    gateway.fake.fail(Fault(status=529), model="flaky", times=None)
    gateway.fake.fail(Fault(status=500), model="broken", times=None)
    gateway.fake.fail(Fault(status=503, message="upstream on fire"), model="down", times=None)
    client = sdk(gateway)

    raw = await chat(client, "resilient")
    assert raw.headers["x-brokle-provider"] == "gem"
    assert gateway.fake.count("anthropic.messages", model="flaky") == 3  # try + 2 retries
    assert gateway.fake.count("gemini.generate", model="steady") == 1
    span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
    assert (span["provider"], span["model"], span["status_code"]) == ("gemini", "steady", "ok")
    assert span["attributes"]["brokle.gateway.attempts"] == "4"
    assert span["attributes"]["brokle.gateway.route"] == "resilient"

    # A stream that fails before its first chunk falls back just the same.
    streamed = await chat(client, "resilient-stream", stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in streamed.parse() if c.choices])
    assert text == "Echo: hi" and streamed.headers["x-brokle-provider"] == "claude"
    assert gateway.fake.count("openai.chat", model="broken") == 3

    # With nowhere to fall back to, the client gets a 502 in OpenAI's error shape.
    with pytest.raises(openai.APIStatusError) as info:
        await chat(client, "doomed")
    assert info.value.status_code == 502
    assert info.value.body == {  # type: ignore[comparison-overlap]
        "message": "Provider 'oai' answered 503: upstream on fire",
        "type": "api_error",
        "param": None,
        "code": "upstream_unavailable",
    }
    assert gateway.fake.count("openai.chat", model="down") == 2
    [failed] = await project_spans(gateway, "status_code = 'error'", 1)
    assert failed["attributes"]["brokle.gateway.attempts"] == "2"
    assert "upstream on fire" in failed["status_message"]


# -- timeouts ---------------------------------------------------------------------------


async def test_timeouts_fall_back_or_answer_504(gateway: Gateway) -> None:
    await route(
        gateway, "slowpoke", ("oai", "hangs"), ("backup", "quick"), timeout_ms=200, retries=1
    )
    await route(gateway, "deadline", ("oai", "hangs"), timeout_ms=200, retries=0)
    await route(
        gateway, "sluggish", ("oai", "stalls"), ("backup", "quick"), timeout_ms=200, retries=0
    )
    gateway.fake.fail(Fault(hang=True, hang_for=3.0), model="hangs", times=None)
    gateway.fake.fail(Fault(chunk_delay=0.6), model="stalls", times=None)
    client = sdk(gateway)

    started = time.perf_counter()
    raw = await chat(client, "slowpoke")
    elapsed = time.perf_counter() - started
    assert raw.headers["x-brokle-provider"] == "backup"
    assert gateway.fake.count("openai.chat", model="hangs") == 2
    assert 0.4 <= elapsed < 2.0, elapsed  # two 200 ms deadlines, not the 3 s hang

    streamed = await chat(client, "slowpoke", stream=True)
    assert streamed.headers["x-brokle-provider"] == "backup"
    assert [c async for c in streamed.parse()]

    # A first token slower than the deadline is a timeout too (nothing was sent yet).
    stalled = await chat(client, "sluggish", stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stalled.parse() if c.choices])
    assert stalled.headers["x-brokle-provider"] == "backup" and text == "Echo: hi"

    with pytest.raises(openai.APIStatusError) as info:
        await chat(client, "deadline")
    assert info.value.status_code == 504
    assert info.value.code == "upstream_timeout"
    assert info.value.type == "api_error"  # type: ignore[attr-defined]
    assert "timed out" in info.value.message
    [span] = await project_spans(gateway, "attributes['brokle.gateway.route'] = 'deadline'", 1)
    assert span["status_code"] == "error" and "timed out" in span["status_message"]


# -- circuit breaker --------------------------------------------------------------------


async def test_circuit_breaker_skips_a_failing_target_then_gives_it_a_trial(
    tuned: Gateway,
) -> None:
    gw = tuned  # breaker: 2 failures, 1 s cooldown; backoff up to 2 s
    await route(gw, "guarded", ("oai", "primary"), ("backup", "secondary"), retries=0)
    # The primary fails three times, then answers once slowly (so that trial stays in
    # flight while other calls arrive), then normally.
    gw.fake.fail(Fault(status=503), model="primary", times=3)
    gw.fake.fail(Fault(latency=0.8), model="primary", times=1)
    client = sdk(gw)

    def primary() -> int:
        return gw.fake.count("openai.chat", model="primary")

    async def burst(n: int) -> Counter[str]:
        results = await asyncio.gather(*(chat(client, "guarded") for _ in range(n)))
        return Counter(r.headers["x-brokle-provider"] for r in results)

    for _ in range(2):  # two consecutive failures open the breaker
        assert (await chat(client, "guarded")).headers["x-brokle-provider"] == "backup"
    assert primary() == 2
    assert await burst(10) == {"backup": 10}
    assert primary() == 2  # skipped while open

    await asyncio.sleep(1.1)  # cooldown over: one trial, which fails and re-opens it
    assert (await chat(client, "guarded")).headers["x-brokle-provider"] == "backup"
    assert primary() == 3
    assert await burst(5) == {"backup": 5}
    assert primary() == 3

    await asyncio.sleep(1.1)  # the next trial succeeds; concurrent calls do not pile on
    assert await burst(10) == {"oai": 1, "backup": 9}
    assert primary() == 4
    assert (await chat(client, "guarded")).headers["x-brokle-provider"] == "oai"  # closed
    assert primary() == 5


async def test_client_errors_do_not_open_the_breaker(tuned: Gateway) -> None:
    gw = tuned  # breaker: 2 failures, 1 s cooldown; backoff up to 2 s
    await route(gw, "guarded", ("oai", "primary"), ("backup", "secondary"), retries=0)
    gw.fake.fail(Fault(status=400, message="bad tool schema"), model="primary", times=2)
    client = sdk(gw)
    for _ in range(2):
        with pytest.raises(openai.BadRequestError):
            await chat(client, "guarded")
    # The target is healthy; the requests were wrong.
    assert (await chat(client, "guarded")).headers["x-brokle-provider"] == "oai"


# -- mid-stream failures ----------------------------------------------------------------


async def _stream_until_error(client: openai.AsyncOpenAI, model: str) -> tuple[str, Any, str]:
    raw = await chat(client, model, stream=True)
    pieces: list[str] = []

    async def drain() -> None:
        async for chunk in raw.parse():
            pieces.extend(choice.delta.content or "" for choice in chunk.choices)

    with pytest.raises(openai.APIError) as info:
        await drain()
    return "".join(pieces), info.value, raw.headers["x-brokle-trace-id"]


async def test_mid_stream_failures_reach_the_client_and_the_span(gateway: Gateway) -> None:
    gateway.fake.reply(Reply(text="one two three four five"))
    client = sdk(gateway)

    # OpenAI upstream drops the connection after: role chunk, "one ", "two ".
    gateway.fake.fail(Fault(close_after=3), model="cut", times=1)
    text, error, trace_id = await _stream_until_error(client, "oai/cut")
    assert text == "one two "
    assert "closed the stream early" in error.message
    assert error.code == "upstream_stream_error"
    span = await span_of(gateway, trace_id)
    assert (span["status_code"], span["output"]) == ("error", "one two ")
    assert gateway.fake.count("openai.chat", model="cut") == 1  # text was sent: no retry

    # Gemini sends an error event after "one ", "two ".
    gateway.fake.fail(Fault(error_after=2, message="backend melted"), model="gem-cut", times=1)
    text, error, trace_id = await _stream_until_error(client, "gem/gem-cut")
    assert text == "one two " and "backend melted" in error.message
    span = await span_of(gateway, trace_id)
    assert span["status_code"] == "error" and "backend melted" in span["status_message"]

    # Anthropic drops after message_start, ping, content_block_start and "one ".
    gateway.fake.fail(Fault(close_after=4), model="claude-cut", times=1)
    text, error, trace_id = await _stream_until_error(client, "claude/claude-cut")
    assert text == "one "
    assert (await span_of(gateway, trace_id))["status_code"] == "error"

    # A drop before the first content chunk is invisible: the gateway retries.
    gateway.fake.fail(Fault(close_after=1), model="early", times=1)
    raw = await chat(client, "oai/early", stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "one two three four five"
    assert gateway.fake.count("openai.chat", model="early") == 2
    span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
    assert span["status_code"] == "ok" and span["attributes"]["brokle.gateway.attempts"] == "2"


# -- routing strategies -----------------------------------------------------------------


async def test_routing_strategies_over_many_calls(gateway: Gateway) -> None:
    await route(gateway, "fastest", ("oai", "slow"), ("backup", "fast"), strategy="lowest_latency")
    await gateway.api(
        "POST",
        "/routes",
        {
            "model": "split",
            "strategy": "weighted",
            "targets": [
                {"provider": "oai", "model": "heavy", "weight": 3},
                {"provider": "backup", "model": "light", "weight": 1},
            ],
        },
    )
    await route(
        gateway, "thrifty", ("oai", "gpt-4o"), ("backup", "gpt-4o-mini"), strategy="lowest_cost"
    )
    gateway.fake.fail(Fault(latency=0.4), model="slow", times=None)
    client = sdk(gateway)

    # lowest_latency: each target is measured once (unmeasured first), then the fast one wins,
    # also for calls that arrive together.
    first = [(await chat(client, "fastest")).headers["x-brokle-provider"] for _ in range(2)]
    assert first == ["oai", "backup"]
    results = await asyncio.gather(*(chat(client, "fastest") for _ in range(20)))
    assert {r.headers["x-brokle-provider"] for r in results} == {"backup"}
    assert gateway.fake.count("openai.chat", model="slow") == 1

    # weighted 3:1 over 120 concurrent calls (mean 90, sd 4.7; the bounds are ±4 sd).
    results = await asyncio.gather(*(chat(client, "split") for _ in range(120)))
    heavy = gateway.fake.count("openai.chat", model="heavy")
    assert heavy + gateway.fake.count("openai.chat", model="light") == 120
    assert 71 <= heavy <= 109, heavy
    assert sum(r.headers["x-brokle-provider"] == "oai" for r in results) == heavy

    # lowest_cost: gpt-4o-mini is cheaper than gpt-4o, so it always gets the call.
    for _ in range(5):
        assert (await chat(client, "thrifty")).headers["x-brokle-provider"] == "backup"
    assert gateway.fake.count("openai.chat", model="gpt-4o") == 0


# -- cache ------------------------------------------------------------------------------


async def test_cache_under_concurrency(gateway: Gateway) -> None:
    await route(gateway, "cached", ("oai", "gpt-4o-mini"), cache_ttl_seconds=60)
    gateway.fake.reply(Reply(text="cached answer", usage=FakeUsage(prompt=20, completion=5)))
    gateway.fake.fail(Fault(latency=0.2), times=None)  # every call overlaps the others
    client = sdk(gateway)
    question: Any = [{"role": "user", "content": "What is the capital of France?"}]

    results = await asyncio.gather(*(chat(client, "cached", messages=question) for _ in range(50)))
    states = Counter(r.headers["x-brokle-cache"] for r in results)
    upstream = gateway.fake.count("openai.chat")
    # There is no request coalescing: every request that started before the first answer
    # was stored misses and goes upstream (observed: all 50). Each miss is one upstream call.
    assert states["miss"] == upstream and states["miss"] + states["hit"] == 50
    assert 1 <= upstream <= 50
    assert {r.parse().choices[0].message.content for r in results} == {"cached answer"}

    later = await asyncio.gather(*(chat(client, "cached", messages=question) for _ in range(20)))
    assert {r.headers["x-brokle-cache"] for r in later} == {"hit"}
    assert gateway.fake.count("openai.chat") == upstream
    hit = later[0]
    assert hit.headers["x-brokle-provider"] == "cache"
    assert float(hit.headers["x-brokle-cost-usd"]) == 0.0
    span = await span_of(gateway, hit.headers["x-brokle-trace-id"])
    assert span["attributes"]["brokle.gateway.cache"] == "hit" and span["cost_usd"] == 0.0
    assert (span["input_tokens"], span["output_tokens"]) == (20, 5)

    # no-store skips the cache; a changed question misses.
    bypass = await chat(
        client, "cached", messages=question, extra_headers={"x-brokle-cache": "no-store"}
    )
    other = await chat(client, "cached", messages=[{"role": "user", "content": "And Spain?"}])
    assert (bypass.headers["x-brokle-cache"], other.headers["x-brokle-cache"]) == ("bypass", "miss")
    assert gateway.fake.count("openai.chat") == upstream + 2


# -- budgets and limits -----------------------------------------------------------------


async def _spend_concurrently(gw: Gateway, n: int, **kwargs: Any) -> list[int]:
    """n calls to oai/gpt-4o spread over ~0.5 s; their statuses (200, or 429 over budget)."""
    client = sdk(gw)
    rng = random.Random(7)

    async def one(delay: float) -> int | str:
        await asyncio.sleep(delay)
        try:
            await chat(client, "oai/gpt-4o", **kwargs)
        except openai.RateLimitError as exc:
            return 429 if exc.code == "budget_exceeded" else str(exc.code)
        return 200

    statuses = await asyncio.gather(*(one(rng.uniform(0, 0.5)) for _ in range(n)))
    assert set(statuses) <= {200, 429}, statuses
    return [int(s) for s in statuses]


async def _spent(gw: Gateway, calls: int) -> float:
    """The summed cost of the project's successful spans, once all ``calls`` are stored."""
    rows = await project_spans(gw, "status_code = 'ok'", calls)
    assert len(rows) == calls
    return sum(float(r["cost_usd"]) for r in rows)


async def test_budget_holds_under_100_concurrent_requests(gateway: Gateway) -> None:
    limit = 0.05
    await gateway.api("POST", "/budgets", {"period": "daily", "limit_usd": limit})
    usage = FakeUsage(prompt=10, completion=500)
    gateway.fake.reply(Reply(text="ok", usage=usage))
    gateway.fake.fail(Fault(latency=0.05), times=None)
    one_call = OPENAI.cost(usage)  # $0.005025
    # Each call reserves its worst case (~10 input tokens and max_tokens=1000 at gpt-4o:
    # $0.010025) and really costs $0.005025: the budget admits a few at once, and about
    # eight in all as earlier calls settle.
    statuses = await _spend_concurrently(gateway, 100, max_tokens=1000)
    assert statuses.count(200) >= 4 and 429 in statuses
    # Spend what is left one call at a time until the budget refuses.
    done = statuses.count(200)
    refused: openai.RateLimitError | None = None
    while refused is None and done < statuses.count(200) + 10:
        try:
            await chat(sdk(gateway), "oai/gpt-4o", max_tokens=1000)
            done += 1
        except openai.RateLimitError as exc:
            refused = exc
    assert refused is not None, "the budget never refused a call"
    assert refused.code == "budget_exceeded" and refused.response.headers["retry-after"]
    assert gateway.fake.count("openai.chat") == done
    spent = await _spent(gateway, done)
    assert spent == pytest.approx(done * one_call)
    assert spent <= limit + one_call  # overspend of at most one request ...
    assert spent <= limit  # ... in fact none: every reservation covered its call
    assert spent + 0.010025 > limit  # and the budget is used up to its last reservation


async def test_budget_holds_for_requests_with_large_tool_schemas(gateway: Gateway) -> None:
    # Each call really costs $0.016 (6 000 input + 100 output tokens at gpt-4o) but reserves
    # only ~$0.002 (max_tokens=200 and the ~10 tokens of its messages), so about 24 get in
    # at once. Counting the tools, a call would reserve ~$0.022: two at once.
    limit = 0.05
    await gateway.api("POST", "/budgets", {"period": "daily", "limit_usd": limit})
    description = "Look up one record. " * 1200  # 24 000 characters: ~6 000 input tokens
    tools = [
        {
            "type": "function",
            "function": {"name": "lookup", "description": description, "parameters": {}},
        }
    ]
    usage = FakeUsage(prompt=6000, completion=100)
    gateway.fake.reply(Reply(text="ok", usage=usage))
    gateway.fake.fail(Fault(latency=0.05), times=None)
    statuses = await _spend_concurrently(gateway, 100, max_tokens=200, tools=tools)
    assert 200 in statuses
    spent = await _spent(gateway, statuses.count(200))
    assert spent <= limit + OPENAI.cost(usage), f"spent ${spent:.4f} of a ${limit} budget"


async def test_per_key_rpm_and_tpm_limits(gateway: Gateway) -> None:
    first_id = (
        await gateway.client.post("/v1/auth/validate-key", headers={"X-API-Key": gateway.key})
    ).json()["data"]["key_id"]
    second = await gateway.api("POST", "/api-keys", {"name": "second"})
    third = await gateway.api("POST", "/api-keys", {"name": "third"})
    await gateway.api("POST", "/rate-limits", {"rpm": 5, "api_key_id": first_id})
    await gateway.api("POST", "/rate-limits", {"tpm": 100, "api_key_id": second["id"]})
    gateway.fake.reply(Reply(text="ok", usage=FakeUsage(prompt=10, completion=40)))
    gateway.fake.fail(Fault(latency=0.05), times=None)

    # RPM under concurrency: 20 calls at once, exactly 5 get through.
    limited = sdk(gateway)

    async def one(client: openai.AsyncOpenAI) -> Any:
        try:
            return await chat(client, "oai/m")
        except openai.RateLimitError as exc:
            return exc

    results = await asyncio.gather(*(one(limited) for _ in range(20)))
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(refused) == 15 and gateway.fake.count("openai.chat") == 5
    assert refused[0].code == "rate_limited"
    assert int(refused[0].response.headers["retry-after"]) >= 1
    assert refused[0].response.headers["x-ratelimit-limit"] == "5"

    # Other keys are not affected by it.
    free = sdk(gateway, third["key"])
    assert all(
        not isinstance(r, Exception) for r in await asyncio.gather(*(one(free) for _ in range(10)))
    )

    # TPM: each call charges ~10 estimated input tokens up front and its 40 output tokens
    # after, so a 100-token minute admits two calls.
    tokens = sdk(gateway, second["key"])
    for _ in range(2):
        await chat(tokens, "oai/m")
    with pytest.raises(openai.RateLimitError) as info:
        await chat(tokens, "oai/m")
    assert "tokens-per-minute" in info.value.message


async def test_tpm_counts_outputs_larger_than_what_is_left(gateway: Gateway) -> None:
    await gateway.api("POST", "/rate-limits", {"tpm": 1000})
    gateway.fake.reply(Reply(text="long answer", usage=FakeUsage(prompt=10, completion=995)))
    client = sdk(gateway)
    await chat(client, "oai/m")  # ~1 005 tokens: the minute's allowance is used up
    with pytest.raises(openai.RateLimitError):
        await chat(client, "oai/m")


# -- tracing and events -----------------------------------------------------------------


async def test_traceparent_and_routing_decision_event(gateway: Gateway) -> None:
    await route(gateway, "primary-then-backup", ("oai", "down"), ("backup", "up"), retries=0)
    gateway.fake.fail(Fault(status=503), model="down", times=None)
    pubsub = gateway.client.app.state.services.pubsub  # type: ignore[attr-defined]
    events = pubsub.subscribe(f"project:{gateway.project_id}")

    async def decision() -> dict[str, Any]:
        async for event in events:
            if event.get("type") == "routing.decision":
                return dict(event)
        raise AssertionError("subscription ended")

    waiting = asyncio.ensure_future(decision())
    await asyncio.sleep(0)  # the subscription is registered once the generator starts

    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    raw = await chat(
        sdk(gateway),
        "primary-then-backup",
        extra_headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert raw.headers["x-brokle-trace-id"] == trace_id
    event = await asyncio.wait_for(waiting, 5)
    await events.aclose()
    assert event == {
        "type": "routing.decision",
        "project_id": gateway.project_id,
        "trace_id": trace_id,
        "alias": "primary-then-backup",
        "strategy": "fallback",
        "provider": "backup",
        "model": "up",
        "attempts": 2,
        "cache": "bypass",
    }
    span = await span_of(gateway, trace_id)
    assert span["parent_span_id"] == parent
    assert span["span_id"] != parent and len(span["span_id"]) == 16

    # A malformed traceparent is ignored: a new trace, no parent.
    fresh = await chat(sdk(gateway), "oai/m", extra_headers={"traceparent": "00-nothex-01"})
    assert fresh.headers["x-brokle-trace-id"] != trace_id
    span = await span_of(gateway, fresh.headers["x-brokle-trace-id"])
    assert span["parent_span_id"] == ""
