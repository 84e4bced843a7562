"""The official Anthropic SDK through the gateway's Messages API (``POST /v1/messages``),
routed to Anthropic-, OpenAI- and Gemini-shaped upstreams: plain and streamed messages,
system blocks, tools with a tool_use/tool_result round trip, usage (cache reads included),
the ``x-brokle-*`` headers, the span each call records, and Anthropic-shaped errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest
import pytest_asyncio

from tests.conftest import make_settings, running_app
from tests.fakes.script import FakeUsage, Fault, Reply, ToolCall
from tests.fakes.upstreams import FakeUpstream
from tests.integration.gateway.conftest import ADMIN, KEY, Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")


# -- one app per module, one project per test ---------------------------------------------
# The conftest's ``gateway`` fixture starts an app per test (1-3 s). These modules share
# one app and give each test a fresh project with its own key and the same four providers
# (``oai``/``backup`` OpenAI, ``claude`` Anthropic, ``gem`` Gemini, all on the fake
# upstream): routes, budgets, limits, breakers, cache and spans are all per project, so
# tests stay independent. Other modules import ``shared_app`` and ``gateway`` from here.


@dataclass
class SharedApp:
    client: httpx.AsyncClient
    admin: dict[str, str]
    org_id: str


def gateway_app_settings(data_dir: Path, **gateway: Any) -> Any:
    return make_settings(
        data_dir,
        init_admin_email=ADMIN["email"],
        init_admin_password=ADMIN["password"],
        init_project="Gateway",
        init_project_api_key=KEY,
        gateway={"backoff_initial_ms": 1, "backoff_max_ms": 20, **gateway},
        rate_limit={"user_per_minute": 100_000, "user_burst": 100_000},
    )


async def admin_login(client: httpx.AsyncClient) -> dict[str, str]:
    token = (await client.post("/api/v1/auth/login", json=ADMIN)).json()["data"]["token"]
    client.cookies.clear()
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_app(
    tmp_path_factory: pytest.TempPathFactory, shared_store_url: str
) -> AsyncIterator[SharedApp]:
    settings = gateway_app_settings(tmp_path_factory.mktemp("gateway") / "data")
    async with running_app(settings) as client:
        admin = await admin_login(client)
        orgs = (await client.get("/api/v1/organizations", headers=admin)).json()["data"]
        yield SharedApp(client, admin, orgs[0]["id"])


async def project_gateway(
    client: httpx.AsyncClient, admin: dict[str, str], org_id: str, fake: FakeUpstream
) -> Gateway:
    """A new project in ``org_id`` with a gateway key and the four fake-upstream providers."""
    created = await client.post(
        f"/api/v1/organizations/{org_id}/projects",
        json={"name": f"gw-{uuid.uuid4().hex[:10]}"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    project_id = created.json()["data"]["id"]
    key = await client.post(
        f"/api/v1/projects/{project_id}/api-keys", json={"name": "sdk"}, headers=admin
    )
    assert key.status_code == 201, key.text
    gw = Gateway(client, admin, project_id, key.json()["data"]["key"], fake)
    for name, kind, base in (
        ("oai", "openai", fake.openai_base_url),
        ("backup", "openai", fake.openai_base_url),
        ("claude", "anthropic", fake.base_url),
        ("gem", "gemini", fake.base_url),
    ):
        await gw.api(
            "POST",
            "/providers",
            {"name": name, "provider": kind, "api_key": "sk-upstream", "base_url": base},
        )
    return gw


@pytest_asyncio.fixture(loop_scope="module")
async def gateway(shared_app: SharedApp, fake_upstream: FakeUpstream) -> Gateway:
    """Same contract as the conftest's ``gateway``, on the module's shared app."""
    return await project_gateway(
        shared_app.client, shared_app.admin, shared_app.org_id, fake_upstream
    )


@dataclass(frozen=True)
class Family:
    """One upstream family reached through a provider credential of the fixture."""

    model: str  # what the client sends: "<provider name>/<upstream model>"
    provider: str  # the credential's name (x-brokle-provider)
    kind: str  # the span's provider column
    upstream_model: str
    route: str  # the fake upstream's route for a plain call
    stream_route: str
    prices: tuple[float, float, float]  # USD per million: input, cached input, output

    def cost(self, usage: FakeUsage) -> float:
        fresh = usage.prompt - usage.cached
        input_rate, cached_rate, output_rate = self.prices
        return (
            fresh * input_rate + usage.cached * cached_rate + usage.completion * output_rate
        ) / 1e6


CLAUDE = Family(
    "claude/claude-sonnet-4-20250514",
    "claude",
    "anthropic",
    "claude-sonnet-4-20250514",
    "anthropic.messages",
    "anthropic.messages",
    (3.0, 0.3, 15.0),
)
OPENAI = Family(
    "oai/gpt-4o", "oai", "openai", "gpt-4o", "openai.chat", "openai.chat", (2.5, 1.25, 10.0)
)
GEMINI = Family(
    "gem/gemini-2.0-flash",
    "gem",
    "gemini",
    "gemini-2.0-flash",
    "gemini.generate",
    "gemini.stream",
    (0.1, 0.025, 0.4),
)
FAMILIES = (CLAUDE, OPENAI, GEMINI)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def claude_sdk(gw: Gateway, key: str | None = None) -> anthropic.AsyncAnthropic:
    # The Anthropic SDK only takes an httpx2 client (gw.http_client() is plain httpx).
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(gw.client.app))  # type: ignore[attr-defined]
    return anthropic.AsyncAnthropic(
        api_key=key or gw.key, base_url="http://brokle.test", http_client=http, max_retries=0
    )


async def span_of(gw: Gateway, trace_id: str) -> dict[str, Any]:
    """The one span recorded for ``trace_id`` (polls: spans are written in the background)."""
    store = gw.client.app.state.services.telemetry.store  # type: ignore[attr-defined]
    rows: list[dict[str, Any]] = []
    for _ in range(100):
        rows = await store.aquery_dicts(
            "SELECT * FROM spans WHERE project_id = {p:String} AND trace_id = {t:String}",
            {"p": gw.project_id, "t": trace_id},
        )
        if rows:
            break
        await asyncio.sleep(0.1)
    assert len(rows) == 1, f"expected one span for trace {trace_id}, found {len(rows)}"
    return rows[0]


def assert_span(span: dict[str, Any], family: Family, usage: FakeUsage, *, stream: bool) -> None:
    assert (span["provider"], span["model"], span["operation"]) == (
        family.kind,
        family.upstream_model,
        "chat",
    )
    assert span["attributes"]["brokle.gateway.provider"] == family.provider
    assert span["attributes"]["brokle.gateway.stream"] == ("true" if stream else "false")
    assert (span["input_tokens"], span["output_tokens"], span["cached_tokens"]) == (
        usage.prompt,
        usage.completion,
        usage.cached,
    )
    assert span["cost_usd"] > 0
    assert span["cost_usd"] == pytest.approx(family.cost(usage))
    assert span["status_code"] == "ok"


async def test_plain_message_with_system_blocks_against_every_upstream(gateway: Gateway) -> None:
    usage = FakeUsage(prompt=1000, completion=50, cached=600)
    gateway.fake.reply(Reply(text="Bonjour, Ada.", usage=usage))
    client = claude_sdk(gateway)
    for family in FAMILIES:
        raw = await client.messages.with_raw_response.create(
            model=family.model,
            max_tokens=256,
            system=[
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Answer in French."},
            ],
            messages=[{"role": "user", "content": "Greet Ada"}],
            metadata={"user_id": "user-42"},
            extra_body={"temperature": 0.2},  # no longer a named argument of the SDK
        )
        message = await raw.parse()
        assert message.type == "message" and message.role == "assistant"
        assert message.id.startswith("msg_")
        assert message.model == family.model
        assert [(b.type, getattr(b, "text", None)) for b in message.content] == [
            ("text", "Bonjour, Ada.")
        ]
        assert message.stop_reason == "end_turn"
        # Anthropic's accounting: input_tokens exclude the cache reads.
        assert (
            message.usage.input_tokens,
            message.usage.cache_read_input_tokens,
            message.usage.output_tokens,
        ) == (400, 600, 50), family.model
        assert raw.headers["x-brokle-provider"] == family.provider
        assert raw.headers["x-brokle-cache"] == "bypass"
        assert float(raw.headers["x-brokle-cost-usd"]) == pytest.approx(family.cost(usage))

        sent = gateway.fake.last(family.route).body
        if family is CLAUDE:
            assert sent["model"] == "claude-sonnet-4-20250514" and sent["max_tokens"] == 256
            assert sent["system"] == [
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Answer in French."},
            ]
            assert sent["messages"] == [
                {"role": "user", "content": [{"type": "text", "text": "Greet Ada"}]}
            ]
            assert sent["metadata"] == {"user_id": "user-42"} and sent["temperature"] == 0.2
        elif family is OPENAI:
            assert sent["model"] == "gpt-4o" and sent["max_tokens"] == 256
            system, user = sent["messages"]
            assert system["role"] == "system"
            assert "".join(p["text"] for p in system["content"]) == (
                "You are terse.Answer in French."
            )
            assert user == {"role": "user", "content": "Greet Ada"}
            assert sent["user"] == "user-42"
        else:
            assert sent["systemInstruction"] == {
                "parts": [{"text": "You are terse."}, {"text": "Answer in French."}]
            }
            assert sent["contents"] == [{"role": "user", "parts": [{"text": "Greet Ada"}]}]
            assert sent["generationConfig"] == {"temperature": 0.2, "maxOutputTokens": 256}

        span = await span_of(gateway, raw.headers["x-brokle-trace-id"])
        assert_span(span, family, usage, stream=False)
        assert span["attributes"]["brokle.gateway.route"] == family.model
        assert "Greet Ada" in span["input"] and "Bonjour, Ada." in span["output"]
        assert span["user_id"] == "user-42"


async def test_stream_helper_against_every_upstream(gateway: Gateway) -> None:
    usage = FakeUsage(prompt=300, completion=40, cached=100)
    gateway.fake.reply(Reply(text="one two three four", usage=usage, finish="length"))
    client = claude_sdk(gateway)
    for family in FAMILIES:
        async with client.messages.stream(
            model=family.model,
            max_tokens=40,
            system="Count.",
            messages=[{"role": "user", "content": "count to four"}],
        ) as stream:
            pieces = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
            headers = stream.response.headers
        assert "".join(pieces) == "one two three four"
        assert len(pieces) > 1, "the text arrives in several deltas"
        assert final.content[0].type == "text" and final.content[0].text == "one two three four"
        assert final.stop_reason == "max_tokens"
        assert (
            final.usage.input_tokens,
            final.usage.cache_read_input_tokens,
            final.usage.output_tokens,
        ) == (200, 100, 40), family.model
        assert headers["content-type"].startswith("text/event-stream")
        assert headers["x-brokle-provider"] == family.provider
        assert headers["x-brokle-cache"] == "bypass"
        assert gateway.fake.last(family.stream_route).model == family.upstream_model
        span = await span_of(gateway, headers["x-brokle-trace-id"])
        assert_span(span, family, usage, stream=True)
        assert span["ttft_ms"] is not None and span["output"] == "one two three four"


async def test_create_stream_true_emits_anthropic_events(gateway: Gateway) -> None:
    gateway.fake.reply(
        Reply(
            text="Let me check.",
            tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),),
            usage=FakeUsage(prompt=50, completion=20),
        )
    )
    client = claude_sdk(gateway)
    for family in FAMILIES:
        stream = await client.messages.create(
            model=family.model,
            max_tokens=100,
            stream=True,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "Weather in Oslo?"}],
        )
        events = [event async for event in stream]
        kinds = [e.type for e in events]
        assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
        starts = [e.content_block for e in events if e.type == "content_block_start"]
        assert [b.type for b in starts] == ["text", "tool_use"], family.model
        tool = starts[1]
        assert tool.name == "get_weather" and tool.id  # type: ignore[union-attr]
        # every block is opened, filled and closed in order
        indexes = [(e.type, getattr(e, "index", None)) for e in events[1:-2]]
        assert indexes[0] == ("content_block_start", 0)
        assert ("content_block_stop", 0) in indexes and indexes[-1] == ("content_block_stop", 1)
        text = "".join(
            e.delta.text  # type: ignore[union-attr]
            for e in events
            if e.type == "content_block_delta" and e.delta.type == "text_delta"
        )
        arguments = "".join(
            e.delta.partial_json  # type: ignore[union-attr]
            for e in events
            if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
        )
        assert text == "Let me check." and json.loads(arguments) == {"city": "Oslo"}
        delta = events[-2]
        assert delta.delta.stop_reason == "tool_use"  # type: ignore[union-attr]
        assert (delta.usage.input_tokens, delta.usage.output_tokens) == (50, 20)  # type: ignore[union-attr]


async def test_tool_use_round_trip_against_every_upstream(gateway: Gateway) -> None:
    client = claude_sdk(gateway)
    for family in FAMILIES:
        gateway.fake.reply(
            Reply(
                tool_calls=(ToolCall("get_weather", {"city": "Oslo"}, id="toolu_fake1"),),
                usage=FakeUsage(prompt=80, completion=15),
            ),
            model=family.upstream_model,
        )
        question = {"role": "user", "content": "What's the weather in Oslo?"}
        first = await client.messages.create(
            model=family.model,
            max_tokens=200,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "auto"},
            messages=[question],  # type: ignore[list-item]
        )
        assert first.stop_reason == "tool_use", family.model
        [call] = [b for b in first.content if b.type == "tool_use"]
        assert call.name == "get_weather" and call.input == {"city": "Oslo"} and call.id
        if family is not GEMINI:  # Gemini has no call ids; the gateway makes them up
            assert call.id == "toolu_fake1"

        sent = gateway.fake.last(family.route).body
        if family is CLAUDE:
            assert sent["tools"] == [WEATHER_TOOL] and sent["tool_choice"] == {"type": "auto"}
        elif family is OPENAI:
            assert sent["tools"] == [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": WEATHER_TOOL["input_schema"],
                        "description": "Current weather for a city",
                    },
                }
            ]
            assert sent["tool_choice"] == "auto"
        else:
            [declaration] = sent["tools"][0]["functionDeclarations"]
            assert declaration["name"] == "get_weather"
            assert declaration["parametersJsonSchema"] == WEATHER_TOOL["input_schema"]

        gateway.fake.reply(
            Reply(text="It is 3°C in Oslo.", usage=FakeUsage(prompt=120, completion=9)),
            model=family.upstream_model,
        )
        second = await client.messages.create(
            model=family.model,
            max_tokens=200,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[
                question,  # type: ignore[list-item]
                {"role": "assistant", "content": first.content},  # type: ignore[list-item]
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": call.id,
                            "content": [{"type": "text", "text": '{"temp_c": 3}'}],
                        }
                    ],
                },
            ],
        )
        assert second.stop_reason == "end_turn"
        assert second.content[0].type == "text" and second.content[0].text == "It is 3°C in Oslo."
        assert (second.usage.input_tokens, second.usage.output_tokens) == (120, 9)

        sent = gateway.fake.last(family.route).body
        if family is CLAUDE:
            assert sent["messages"][1:] == [
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "toolu_fake1",
                            "name": "get_weather",
                            "input": {"city": "Oslo"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_fake1",
                            "content": '{"temp_c": 3}',
                        }
                    ],
                },
            ]
        elif family is OPENAI:
            assistant, tool = sent["messages"][1:]
            assert assistant["role"] == "assistant"
            assert assistant["tool_calls"][0]["id"] == "toolu_fake1"
            assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {
                "city": "Oslo"
            }
            assert tool == {
                "role": "tool",
                "tool_call_id": "toolu_fake1",
                "content": '{"temp_c": 3}',
            }
        else:
            model_turn, answer = sent["contents"][1:]
            assert model_turn == {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
            }
            assert answer == {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp_c": 3}}}],
            }


async def test_streamed_tool_use_is_assembled_by_the_sdk(gateway: Gateway) -> None:
    gateway.fake.reply(
        Reply(
            tool_calls=(
                ToolCall("get_weather", {"city": "Oslo"}),
                ToolCall("get_weather", {"city": "Bergen"}),
            ),
            usage=FakeUsage(prompt=60, completion=30),
        )
    )
    client = claude_sdk(gateway)
    for family in FAMILIES:
        async with client.messages.stream(
            model=family.model,
            max_tokens=100,
            tools=[WEATHER_TOOL],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "Weather in Oslo and Bergen?"}],
        ) as stream:
            final = await stream.get_final_message()
        calls = [b for b in final.content if b.type == "tool_use"]
        assert [(c.name, c.input) for c in calls] == [
            ("get_weather", {"city": "Oslo"}),
            ("get_weather", {"city": "Bergen"}),
        ], family.model
        assert len({c.id for c in calls}) == 2
        assert final.stop_reason == "tool_use"
        assert final.usage.output_tokens == 30


async def test_anthropic_shaped_errors(gateway: Gateway) -> None:
    client = claude_sdk(gateway)
    hello = [{"role": "user", "content": "hi"}]

    bad_key = claude_sdk(gateway, key="bk_" + "z" * 40)
    with pytest.raises(anthropic.AuthenticationError) as denied:
        await bad_key.messages.create(model=CLAUDE.model, max_tokens=10, messages=hello)  # type: ignore[arg-type]
    assert denied.value.status_code == 401
    assert denied.value.body["type"] == "error"  # type: ignore[index]
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="no-such-model", max_tokens=10, messages=hello)  # type: ignore[arg-type]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    assert "no-such-model" in missing.value.body["error"]["message"]  # type: ignore[index]

    # Parameters the Messages API front or the target cannot honour are a 400, not a 500.
    with pytest.raises(anthropic.BadRequestError) as thinking:
        await client.messages.create(
            model=CLAUDE.model,
            max_tokens=2000,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=hello,  # type: ignore[arg-type]
        )
    assert thinking.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as top_k:
        await client.messages.create(
            model=OPENAI.model, max_tokens=10, messages=hello, extra_body={"top_k": 5}
        )  # type: ignore[arg-type]
    assert "top_k" in top_k.value.body["error"]["message"]  # type: ignore[index]
    assert gateway.fake.count() == 0  # refused before anything went upstream

    # An upstream 429 with every retry used up comes back as Anthropic's rate_limit_error.
    gateway.fake.fail(Fault(status=429, retry_after=0), model=CLAUDE.upstream_model, times=None)
    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model=CLAUDE.model, max_tokens=10, messages=hello)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert gateway.fake.count("anthropic.messages") == 3  # the first try and two retries


async def test_mid_stream_failure_ends_with_an_error_event(gateway: Gateway) -> None:
    gateway.fake.reply(Reply(text="alpha beta gamma delta epsilon"))
    # message_start, ping, content_block_start, "alpha ", then the upstream's error event
    gateway.fake.fail(
        Fault(error_after=4, message="overloaded upstream"), route="anthropic.messages"
    )
    client = claude_sdk(gateway)
    seen: list[str] = []

    async def read() -> None:
        async with client.messages.stream(
            model=CLAUDE.model,
            max_tokens=50,
            messages=[{"role": "user", "content": "go"}],
        ) as stream:
            async for text in stream.text_stream:
                seen.append(text)

    with pytest.raises(anthropic.APIStatusError) as failed:
        await read()
    assert "".join(seen) == "alpha "
    assert failed.value.body["type"] == "error"  # type: ignore[index]
    assert "overloaded upstream" in failed.value.body["error"]["message"]  # type: ignore[index]
    trace_id = failed.value.response.headers["x-brokle-trace-id"]
    span = await span_of(gateway, trace_id)
    assert span["status_code"] == "error" and "overloaded upstream" in span["status_message"]
    assert span["output"] == "alpha "
    assert gateway.fake.count("anthropic.messages") == 1  # never retried once text was sent


async def test_cache_write_tokens_are_priced_at_the_cache_write_rate(gateway: Gateway) -> None:
    usage = FakeUsage(prompt=1000, completion=50, cached=600, cache_write=100)
    gateway.fake.reply(Reply(text="ok", usage=usage))
    raw = await claude_sdk(gateway).messages.with_raw_response.create(
        model=CLAUDE.model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    message = await raw.parse()
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.cache_creation_input_tokens,
    ) == (300, 600, 100)
    # 300 fresh at $3, 600 cache reads at $0.30, 100 cache writes at $3.75, 50 out at $15
    expected = (300 * 3.0 + 600 * 0.3 + 100 * 3.75 + 50 * 15.0) / 1e6
    assert float(raw.headers["x-brokle-cost-usd"]) == pytest.approx(expected)


async def test_cache_control_is_not_forwarded_to_openai_upstreams(gateway: Gateway) -> None:
    ephemeral = {"type": "ephemeral"}
    await claude_sdk(gateway).messages.create(
        model=OPENAI.model,
        max_tokens=50,
        system=[{"type": "text", "text": "Long shared prefix", "cache_control": ephemeral}],
        tools=[{**WEATHER_TOOL, "cache_control": ephemeral}],  # type: ignore[list-item]
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": ephemeral}],
            }
        ],
    )
    assert "cache_control" not in json.dumps(gateway.fake.last("openai.chat").body)
