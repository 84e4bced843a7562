"""The brokle SDK (0.4) as a real client: its OTLP export is captured on loopback, then
decoded exactly as the /v1/traces endpoint would (gzip, protobuf, span rows)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from brokle import Brokle, observe, set_client
from brokle.types.attributes import BrokleOtelSpanAttributes as Attrs

from brokle_server.core.types import ProjectScope
from brokle_server.ingest.decode import BodyEncoding, body_encoding, decompress
from brokle_server.ingest.otlp_traces import decode_traces_protobuf
from brokle_server.store.schema import SPAN_COLUMNS

API_KEY = "bk_" + "x" * 40


class _Capture(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, str], bytes]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.requests.append((self.path, headers, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[str, list[tuple[str, dict[str, str], bytes]]]]:
    requests: list[tuple[str, dict[str, str], bytes]] = []
    handler = type("Handler", (_Capture,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_sdk_spans_decode_to_promoted_columns(
    capture: tuple[str, list[tuple[str, dict[str, str], bytes]]], scope: ProjectScope
) -> None:
    base_url, requests = capture
    client = Brokle(
        api_key=API_KEY,
        base_url=base_url,
        environment="Staging",
        release="r-42",
        version="v-7",
        metrics_enabled=False,
        flush_interval=60.0,
    )
    set_client(client)
    try:

        @observe(name="handle", user_id="u-1", session_id="s-1", tags=["beta"])
        def handle(question: str) -> str:
            with client.start_as_current_generation(
                name="chat",
                model="gpt-4o-mini",
                provider="openai",
                input_messages=[{"role": "user", "content": question}],
                model_parameters={"temperature": 0.2},
            ) as gen:
                gen.set_attribute(
                    Attrs.GEN_AI_OUTPUT_MESSAGES,
                    json.dumps([{"role": "assistant", "content": "4"}]),
                )
                gen.set_attribute(Attrs.GEN_AI_USAGE_INPUT_TOKENS, 9)
                gen.set_attribute(Attrs.GEN_AI_USAGE_OUTPUT_TOKENS, 1)
                gen.set_attribute(Attrs.GEN_AI_RESPONSE_TTFT, 42.0)
            return "4"

        handle("2+2?")
        assert client.flush(timeout_seconds=10)
    finally:
        client.shutdown(timeout_seconds=5)

    traces = [r for r in requests if r[0] == "/v1/traces"]
    assert traces, f"the SDK sent nothing to /v1/traces: {[r[0] for r in requests]}"
    rows = []
    for _, headers, raw in traces:
        assert headers["x-api-key"] == API_KEY
        assert body_encoding(headers["content-type"]) is BodyEncoding.PROTOBUF
        body = decompress(raw, headers.get("content-encoding"), 16 << 20)
        batch = decode_traces_protobuf(body, scope, datetime.now(UTC), api_key_id="k")
        assert batch.rejected.count == 0
        rows += [dict(zip(SPAN_COLUMNS, row, strict=True)) for row in batch.rows]
    by_name = {r["name"]: r for r in rows}
    gen, outer = by_name["chat gpt-4o-mini"], by_name["handle"]

    assert gen["trace_id"] == outer["trace_id"] and gen["parent_span_id"] == outer["span_id"]
    assert gen["environment"] == outer["environment"] == "staging"
    assert (gen["span_type"], gen["provider"], gen["model"]) == (
        "generation",
        "openai",
        "gpt-4o-mini",
    )
    assert (gen["input_tokens"], gen["output_tokens"], gen["total_tokens"]) == (9, 1, 10)
    assert gen["ttft_ms"] == 42.0
    assert json.loads(gen["input"]) == [{"role": "user", "content": "2+2?"}]
    assert json.loads(gen["output"]) == [{"role": "assistant", "content": "4"}]
    assert Attrs.GEN_AI_INPUT_MESSAGES not in gen["attributes"]
    assert (gen["release"], gen["version"]) == ("r-42", "v-7")  # version: resource attribute
    assert gen["attributes"]["gen_ai.request.temperature"] == "0.2"
    assert (outer["user_id"], outer["session_id"], outer["tags"]) == ("u-1", "s-1", ["beta"])
    assert outer["span_type"] == "span" and outer["level"] == "DEFAULT"
    assert "2+2?" in outer["input"] and outer["output"]
