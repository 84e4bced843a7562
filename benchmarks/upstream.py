"""A minimal, fast OpenAI-compatible upstream for gateway benchmarks, in its own process.

Plain asyncio (uvloop when installed) with a hand-rolled HTTP/1.1 keep-alive parser: no
framework, so the upstream costs a few tens of microseconds per request and is never the
bottleneck of a gateway benchmark. Replies are pre-rendered bytes:

* ``POST /v1/chat/completions``: a ``chat.completion`` (about 700 bytes, with ``usage``); with
  ``"stream": true`` Server-Sent Events over chunked transfer encoding: a role chunk, 10
  content chunks, a finish chunk, a usage chunk (``choices: []``) and ``data: [DONE]``.
  ``--stream-interval-ms`` spaces the events out after the first content chunk, so that
  time to first token and stream duration differ as they do with a real model.
* ``GET /v1/models``: one model.
* anything else: an OpenAI-shaped 404.

Run: ``python -m benchmarks.upstream --port 9000 [--stream-interval-ms 2]``; from code,
:class:`Upstream` starts it in a subprocess and waits until it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import httpx

MODEL = "gpt-4o-mini-2024-07-18"
_CREATED = 1_735_689_600
_MAX_HEAD = 64 << 10
_MAX_BODY = 32 << 20
_ANSWER = (
    "Your invoice for last month includes the enterprise plan discount of 15%. "
    "The discount was applied on the 3rd, after the renewal, so the total shown is correct. "
    "If you were expecting it on the previous cycle, I can open a ticket with billing."
)
_STREAM_PIECES = 10
_REPO_ROOT = Path(__file__).resolve().parent.parent


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _completion_body() -> bytes:
    return _dumps(
        {
            "id": "chatcmpl-bench0000000000000000000000001",
            "object": "chat.completion",
            "created": _CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench0001",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 187,
                "completion_tokens": 52,
                "total_tokens": 239,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }
    )


def _split(text: str, pieces: int) -> list[str]:
    words = text.split(" ")
    size = -(-len(words) // pieces)
    parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [part if i == 0 else " " + part for i, part in enumerate(parts)]


def _stream_events() -> list[bytes]:
    """Every SSE event of one streamed completion, each already framed as an HTTP chunk."""
    base = {
        "id": "chatcmpl-bench0000000000000000000000002",
        "object": "chat.completion.chunk",
        "created": _CREATED,
        "model": MODEL,
        "system_fingerprint": "fp_bench0001",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    payloads = [chunk({"role": "assistant", "content": "", "refusal": None})]
    payloads += [chunk({"content": piece}) for piece in _split(_ANSWER, _STREAM_PIECES)]
    payloads.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 187, "completion_tokens": 52, "total_tokens": 239}
    payloads.append({**base, "choices": [], "usage": usage})
    events = [b"data: " + _dumps(p) + b"\n\n" for p in payloads] + [b"data: [DONE]\n\n"]
    return [b"%x\r\n%s\r\n" % (len(e), e) for e in events]


def _models_body() -> bytes:
    return _dumps(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": _CREATED, "owned_by": "bench"}],
        }
    )


def _not_found_body() -> bytes:
    return _dumps(
        {
            "error": {
                "message": "Unknown path",
                "type": "invalid_request_error",
                "param": None,
                "code": "not_found",
            }
        }
    )


def _response(status: str, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return (
        b"HTTP/1.1 " + status.encode() + b"\r\n"
        b"content-type: " + content_type + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"\r\n" + body
    )


_COMPLETION = _response("200 OK", _completion_body())
_MODELS = _response("200 OK", _models_body())
_NOT_FOUND = _response("404 Not Found", _not_found_body())
_BAD_REQUEST = _response("400 Bad Request", b'{"error":{"message":"malformed request"}}')
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)
_STREAM_EVENTS = _stream_events()
_LAST_CHUNK = b"0\r\n\r\n"


def _wants_stream(body: bytes) -> bool:
    if b'"stream"' not in body:
        return False
    try:
        request = json.loads(body)
    except ValueError:
        return False
    return isinstance(request, dict) and request.get("stream") is True


class _Connection(asyncio.Protocol):
    """One client connection: parse requests in order, answer each, keep the connection open.

    While a stream is being written, reading pauses and later requests wait in the buffer,
    so that pipelined requests are still answered in order.
    """

    def __init__(self, stream_interval: float) -> None:
        self._interval = stream_interval
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._streaming = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._streaming:
            self._process()

    def _process(self) -> None:
        transport = self._transport
        buffer = self._buffer
        while transport is not None and not self._streaming:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    self._fail()
                return
            head = bytes(buffer[:end]).split(b"\r\n")
            parts = head[0].split(b" ")
            if len(parts) != 3:
                self._fail()
                return
            method, target = parts[0], parts[1]
            length, close = 0, parts[2] == b"HTTP/1.0"
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or 0)
                elif name == b"connection":
                    token = value.strip().lower()
                    close = token == b"close" or (close and token != b"keep-alive")
                elif name == b"transfer-encoding":
                    self._fail()  # every client benchmarked here sends a Content-Length
                    return
            if length > _MAX_BODY:
                self._fail()
                return
            total = end + 4 + length
            if len(buffer) < total:
                return
            body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            path = target.split(b"?", 1)[0]
            if method == b"POST" and path in (b"/v1/chat/completions", b"/chat/completions"):
                if _wants_stream(body):
                    self._streaming = True
                    self._task = asyncio.ensure_future(self._stream(close))
                    return
                transport.write(_COMPLETION)
            elif method == b"GET" and path in (b"/v1/models", b"/models"):
                transport.write(_MODELS)
            else:
                transport.write(_NOT_FOUND)
            if close:
                transport.close()
                return

    async def _stream(self, close: bool) -> None:
        events = _STREAM_EVENTS
        try:
            if self._transport is None:
                return
            # Head, role chunk and the first content chunk go out at once: the first token.
            self._transport.write(_STREAM_HEAD + events[0] + events[1])
            for event in events[2:]:
                if self._interval > 0:
                    await asyncio.sleep(self._interval)
                if self._transport is None:
                    return
                self._transport.write(event)
            self._transport.write(_LAST_CHUNK)
            if close:
                self._transport.close()
        finally:
            self._streaming = False
        if self._buffer:
            self._process()

    def _fail(self) -> None:
        if self._transport is not None:
            self._transport.write(_BAD_REQUEST)
            self._transport.close()


async def serve(host: str, port: int, stream_interval_ms: float) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    interval = stream_interval_ms / 1000
    server = await loop.create_server(
        lambda: _Connection(interval), host, port, reuse_address=True, backlog=4096
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"upstream listening on http://{host}:{port}/v1", flush=True)
    async with server:
        await stop.wait()


def _run(host: str, port: int, stream_interval_ms: float) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(host, port, stream_interval_ms))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(host, port, stream_interval_ms))


class Upstream:
    """``python -m benchmarks.upstream`` in a subprocess; a context manager.

    :attr:`base_url` ends in ``/v1``, as OpenAI clients expect.
    """

    def __init__(
        self, port: int | None = None, *, host: str = "127.0.0.1", stream_interval_ms: float = 0
    ) -> None:
        self.host = host
        self.port = port or _free_port()
        self.stream_interval_ms = stream_interval_ms
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the upstream has not been started"
        return self.process.pid

    def start(self, timeout: float = 30.0) -> Upstream:
        command = [sys.executable, "-m", "benchmarks.upstream", "--host", self.host]
        command += ["--port", str(self.port)]
        command += ["--stream-interval-ms", str(self.stream_interval_ms)]
        self.process = subprocess.Popen(
            command, cwd=_REPO_ROOT, stdout=subprocess.DEVNULL, env={**os.environ}
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the upstream exited with {self.process.returncode}")
            try:
                if httpx.get(self.base_url + "/models", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the upstream did not answer in time")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--stream-interval-ms",
        type=float,
        default=0.0,
        help="delay between streamed events after the first token (default 0)",
    )
    args = parser.parse_args(argv)
    _run(args.host, args.port, args.stream_interval_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
