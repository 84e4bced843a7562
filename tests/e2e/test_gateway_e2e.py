"""The gateway end to end: a real ``brokle serve`` process configured over HTTP with the
management API, the official OpenAI and Anthropic SDKs talking to it over real HTTP
(streaming included), fake OpenAI/Anthropic/Gemini upstreams on loopback, and the spans the
calls left in the store once the server stopped."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.e2e.conftest import Server, query_store
from tests.fakes.script import FakeUsage, Fault, Reply, ToolCall
from tests.fakes.upstreams import FakeUpstream

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "gateway-e2e@example.com"
ADMIN_PASSWORD = "Harbor-Lantern-Pass-42"
PROJECT_KEY = "bk_" + "E2eGw" * 8
USAGE = FakeUsage(prompt=1200, completion=80, cached=200)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _configure(server: Server, fake: FakeUpstream) -> str:
    """Log in as the first-run admin, add three providers and three routes; the project id."""
    with httpx.Client(base_url=server.base_url, timeout=15) as http:
        login = http.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        http.cookies.clear()
        admin = {"Authorization": f"Bearer {login.json()['data']['token']}"}
        validated = http.post("/v1/auth/validate-key", headers={"X-API-Key": PROJECT_KEY})
        project_id: str = validated.json()["data"]["project_id"]
        api = f"/api/v1/projects/{project_id}"
        for name, kind, base in (
            ("up-openai", "openai", fake.openai_base_url),
            ("up-claude", "anthropic", fake.base_url),
            ("up-gemini", "gemini", fake.base_url),
        ):
            body = {"name": name, "provider": kind, "api_key": f"sk-{name}", "base_url": base}
            created = http.post(f"{api}/providers", json=body, headers=admin)
            assert created.status_code == 201, created.text
            assert f"sk-{name}" not in created.text  # write-only (a short preview at most)
        routes: list[dict[str, Any]] = [
            {
                "model": "smart",
                "strategy": "fallback",
                "retries": 0,
                "targets": [
                    {"provider": "up-openai", "model": "broken-model"},
                    {"provider": "up-openai", "model": "gpt-4o"},
                ],
            },
            {"model": "sonnet", "targets": [{"provider": "up-claude", "model": SONNET}]},
            {"model": "flash", "targets": [{"provider": "up-gemini", "model": FLASH}]},
        ]
        for route in routes:
            created = http.post(f"{api}/routes", json=route, headers=admin)
            assert created.status_code == 201, created.text
        listed = http.get(f"{api}/routes", headers=admin).json()["data"]
        assert sorted(r["model"] for r in listed) == ["flash", "smart", "sonnet"]
    return project_id


SONNET, FLASH = "claude-sonnet-4-20250514", "gemini-2.0-flash"


def test_openai_and_anthropic_sdks_through_a_real_server(
    server_factory: Callable[..., Server],
) -> None:
    calls: dict[str, str] = {}  # label -> trace id
    with FakeUpstream() as fake:
        server = server_factory(
            BROKLE_INIT_ADMIN_EMAIL=ADMIN_EMAIL,
            BROKLE_INIT_ADMIN_PASSWORD=ADMIN_PASSWORD,
            BROKLE_INIT_PROJECT_API_KEY=PROJECT_KEY,
            BROKLE_GATEWAY__BACKOFF_INITIAL_MS="1",
            BROKLE_GATEWAY__BACKOFF_MAX_MS="20",
        )
        project_id = _configure(server, fake)
        fake.reply(Reply(text="Hello from upstream", usage=USAGE))
        fake.fail(Fault(status=503), model="broken-model", times=None)
        oai = openai.OpenAI(api_key=PROJECT_KEY, base_url=server.base_url + "/v1", max_retries=0)
        claude = anthropic.Anthropic(api_key=PROJECT_KEY, base_url=server.base_url, max_retries=0)

        # 1. OpenAI SDK, plain, through a fallback route (the first target answers 503).
        raw = oai.chat.completions.with_raw_response.create(
            model="smart", messages=[{"role": "user", "content": "hello"}]
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == "Hello from upstream"
        assert completion.usage is not None and completion.usage.prompt_tokens == 1200
        assert raw.headers["x-brokle-provider"] == "up-openai"
        assert raw.headers["x-brokle-cache"] == "bypass"
        assert float(raw.headers["x-brokle-cost-usd"]) > 0
        assert fake.last("openai.chat").headers["authorization"] == "Bearer sk-up-openai"
        calls["openai-plain"] = raw.headers["x-brokle-trace-id"]

        # 2. OpenAI SDK, streamed with usage, to Gemini.
        raw_stream = oai.chat.completions.with_raw_response.create(
            model="flash",
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream please"}],
        )
        chunks = list(raw_stream.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Hello from upstream"
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 80
        calls["openai-stream"] = raw_stream.headers["x-brokle-trace-id"]

        # 3. OpenAI SDK, streamed tool call, to Anthropic.
        fake.reply(
            Reply(tool_calls=(ToolCall("get_weather", {"city": "Oslo"}),), usage=USAGE),
            model=SONNET,
        )
        raw_tools = oai.chat.completions.with_raw_response.create(
            model="sonnet",
            stream=True,
            tools=[WEATHER],  # type: ignore[list-item]
            messages=[{"role": "user", "content": "weather in Oslo?"}],
        )
        arguments = ""
        finish = None
        for chunk in raw_tools.parse():
            for choice in chunk.choices:
                for call in choice.delta.tool_calls or []:
                    assert call.index == 0
                    arguments += (call.function.arguments or "") if call.function else ""
                finish = choice.finish_reason or finish
        assert json.loads(arguments) == {"city": "Oslo"} and finish == "tool_calls"
        calls["openai-tools"] = raw_tools.headers["x-brokle-trace-id"]
        fake.reply(Reply(text="Hello from upstream", usage=USAGE), model=SONNET)

        # 4. Anthropic SDK, plain, to Anthropic.
        raw_message = claude.messages.with_raw_response.create(
            model="sonnet",
            max_tokens=100,
            system="Be brief.",
            messages=[{"role": "user", "content": "hello"}],
        )
        message = raw_message.parse()
        assert message.content[0].type == "text"
        assert message.content[0].text == "Hello from upstream"
        assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (1000, 200)
        assert raw_message.headers["x-brokle-provider"] == "up-claude"
        assert fake.last("anthropic.messages").headers["x-api-key"] == "sk-up-claude"
        calls["anthropic-plain"] = raw_message.headers["x-brokle-trace-id"]

        # 5. Anthropic SDK, streamed, to Gemini.
        with claude.messages.stream(
            model="flash", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            streamed = "".join(stream.text_stream)
            final = stream.get_final_message()
            calls["anthropic-stream"] = stream.response.headers["x-brokle-trace-id"]
        assert streamed == "Hello from upstream"
        assert (final.usage.input_tokens, final.usage.output_tokens) == (1000, 80)
        assert final.stop_reason == "end_turn"

        server.stop()
    assert "Traceback" not in server.log()

    rows = query_store(
        server.data_dir,
        "SELECT trace_id, provider, model, operation, input_tokens, output_tokens, "
        "cached_tokens, cost_usd, price_version, status_code, api_key_id, "
        "attributes['brokle.gateway.route'] AS route, "
        "attributes['brokle.gateway.provider'] AS credential, "
        "attributes['brokle.gateway.attempts'] AS attempts, "
        "attributes['brokle.gateway.stream'] AS streamed "
        "FROM spans WHERE project_id = {p:String} AND service_name = 'brokle-gateway'",
        p=project_id,
    )
    by_trace = {row["trace_id"]: row for row in rows}
    assert len(rows) == len(by_trace) == len(calls), rows  # one span per call
    expected = {
        "openai-plain": ("openai", "gpt-4o", "smart", "up-openai", "2", "false", (2.5, 1.25, 10)),
        "openai-stream": ("gemini", FLASH, "flash", "up-gemini", "1", "true", (0.1, 0.025, 0.4)),
        "openai-tools": ("anthropic", SONNET, "sonnet", "up-claude", "1", "true", (3, 0.3, 15)),
        "anthropic-plain": ("anthropic", SONNET, "sonnet", "up-claude", "1", "false", (3, 0.3, 15)),
        "anthropic-stream": ("gemini", FLASH, "flash", "up-gemini", "1", "true", (0.1, 0.025, 0.4)),
    }
    for label, trace_id in calls.items():
        row = by_trace[trace_id]
        kind, model, route, credential, attempts, streamed_flag, prices = expected[label]
        assert (row["provider"], row["model"], row["route"], row["credential"]) == (
            kind,
            model,
            route,
            credential,
        ), label
        assert (row["attempts"], row["streamed"], row["status_code"]) == (
            attempts,
            streamed_flag,
            "ok",
        ), label
        assert (row["input_tokens"], row["output_tokens"], row["cached_tokens"]) == (
            1200,
            80,
            200,
        ), label
        fresh, cached, out = 1000, 200, 80
        cost = (fresh * prices[0] + cached * prices[1] + out * prices[2]) / 1e6
        assert row["cost_usd"] == pytest.approx(cost), label
        assert str(row["price_version"]).startswith("genai-prices-"), label
        assert row["operation"] == "chat" and row["api_key_id"], label
