"""The gateway under load: added latency, throughput and time to first token, side by side.

Every figure is taken against one local OpenAI-compatible upstream
(:mod:`benchmarks.upstream`, a separate process answering in tens of microseconds) so that
what is measured is the gateway, not the model:

1. **Added latency** (one request in flight): the same chat completion sent straight to the
   upstream and through the gateway, interleaved in random order per pair so that drift on a
   shared machine hits both alike; p50/p99 of each, their differences and the median of the
   paired differences. A tiny raw-socket HTTP/1.1 client (keep-alive, ``TCP_NODELAY``, GC off)
   keeps the client's own jitter out of the percentiles.
2. **Throughput** at 16 and 64 concurrent connections for a fixed duration after a warm-up:
   requests/s, errors by status, latency percentiles, with ``wrk`` (a Lua script posts the
   body and counts statuses) when it is installed, else an asyncio httpx client (which
   saturates first, at a few hundred requests/s: ``client_bound`` says when the client, not
   the server, set the pace). The upstream alone is measured the same way.
3. **Time to first token** (one in flight): streamed completions with
   ``stream_options.include_usage``; time until the first non-empty ``delta.content``, direct
   and through the gateway, and the whole stream's duration. The upstream spaces its events
   by ``stream_interval_ms`` after the first token.
4. **LiteLLM's proxy** (``litellm --num_workers 1``, master-key auth, no database) on the same
   upstream, through the same phases (fewer one-in-flight requests: each takes ~15 ms).
   ``litellm[proxy]`` is a benchmark-only dependency: when it is not importable here it is
   installed into ``benchmarks/.venv-litellm`` on first use (git-ignored, ~1.5 minutes); if
   that fails the LiteLLM figures are skipped with the reason.

Brokle runs as a real ``brokle serve`` (embedded mode) configured over its HTTP API like a
user would: a provider ``openai`` pointing at the upstream, a route ``bench-model``, a gateway
rate limit rule (RPM and TPM, high enough never to throttle, still checked per request) on
top of the per-key API limit (``--budget`` adds a USD budget); tracing is always on, and the
spans it recorded are counted in its store after it stops, next to error-level log events.
Requests authenticate with ``Authorization: Bearer bk_...``.

For every phase: the server's CPU% (its whole process tree; 100% = one core) and CPU per
request, the upstream's and the client's CPU, and what other processes on the machine took.
On a 2-core machine client, upstream and gateway share the cores: read throughput with the
CPU columns in mind.

Run: ``python -m benchmarks gateway_load [--quick]``, or with options
``python -m benchmarks.gateway_load --duration 10 --concurrency 16 64 [--no-litellm]
[--profile gw.txt]``. Any OpenAI-compatible endpoint:
``python -m benchmarks.gateway_load --target http://host:4000/v1 --model M --api-key K
--upstream-port 9000`` (point the target at ``http://127.0.0.1:9000/v1`` for the added
latency to mean anything; ``--target-pid`` adds its CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import importlib.metadata
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import (
    BrokleServer,
    Result,
    free_port,
    latency_summary,
    machine_busy_cpu_seconds,
    parse_gauges,
    percentile,
    print_result,
    process_cpu_seconds,
    process_rss_bytes,
    query_store,
    write_result,
)
from benchmarks.upstream import Upstream

# The targets, reported as ratios (never pass/fail).
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 3.0
TARGET_THROUGHPUT_VS_LITELLM = 10.0

ROUTE_ALIAS = "bench-model"
UPSTREAM_MODEL = "gpt-4o-mini"
_BENCH_DIR = Path(__file__).resolve().parent
LITELLM_VENV = _BENCH_DIR / ".venv-litellm"
_ADMIN_EMAIL = "bench@example.com"
_WRK_MARK = "BENCH_JSON "


@dataclass(frozen=True)
class GatewayLoadConfig:
    sequential: int = 5000
    """Request pairs (direct + gateway) one at a time, for added latency."""
    streams: int = 500
    """Streamed pairs one at a time, for time to first token."""
    warmup_requests: int = 200
    """Unmeasured requests per system before each one-in-flight phase."""
    concurrency: tuple[int, ...] = (16, 64)
    duration: float = 10.0
    """Measured seconds per concurrency level."""
    warmup: float = 2.0
    """Seconds of load before each measured throughput window."""
    stream_interval_ms: float = 1.0
    """Upstream delay between streamed events after the first token."""
    litellm: bool = True
    litellm_sequential: int = 2000
    litellm_streams: int = 300
    budget: bool = False
    """Also give Brokle's project a (huge) USD budget: reservation and settlement per call."""
    load_generator: str = "auto"
    """``wrk``, ``httpx`` or ``auto`` (wrk when installed)."""
    target: str | None = None
    """Benchmark this OpenAI-compatible base URL (ending in /v1) instead of a local Brokle."""
    model: str = UPSTREAM_MODEL
    """Model sent to ``target``."""
    api_key: str = ""
    """Bearer key sent to ``target``."""
    target_pid: int | None = None
    """The target's process, for its CPU."""
    direct: str | None = None
    """Baseline base URL (default: the local upstream)."""
    upstream_port: int | None = None
    profile: Path | None = None
    """py-spy the Brokle server during an extra run at the highest concurrency into this file
    (``.svg`` flame graph, ``.json`` speedscope, else py-spy's raw collapsed stacks)."""
    seed: int = 7


QUICK = GatewayLoadConfig(
    sequential=500,
    streams=60,
    warmup_requests=50,
    duration=3.0,
    warmup=1.0,
    litellm_sequential=200,
    litellm_streams=40,
)
"""``--quick``: a smoke check of every phase in about a minute (plus LiteLLM's start)."""


@dataclass(frozen=True)
class _System:
    """One endpoint under test: where, as whom, and which processes serve it."""

    name: str
    base_url: str
    model: str
    headers: Mapping[str, str]
    pids: tuple[int, ...] = ()


# -- request bodies ---------------------------------------------------------------------------


def chat_body(model: str, *, stream: bool) -> bytes:
    """A realistic chat request: a system prompt, a ~700-character user turn, sampling knobs."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {
                "role": "system",
                "content": "You are a concise support assistant for an invoicing product. "
                "Answer from the account context; say when you are unsure.",
            },
            {
                "role": "user",
                "content": (
                    "Context: enterprise plan, renewed on the 1st, 15% discount negotiated "
                    "in March, invoices issued on the 3rd of each month, payment terms net "
                    "30, two seats added mid-cycle and prorated. Question: was the discount "
                    "applied to last month's invoice, and why does the total differ from "
                    "the previous one? "
                )
                * 2,
            },
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "user": "user-42",
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


# -- a raw HTTP/1.1 client for one-in-flight timing ------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    """HTTP status, or 0 for a transport failure."""
    total_s: float
    first_token_s: float | None = None
    """Streams: seconds until the first non-empty ``delta.content`` arrived."""


class RawClient:
    """One keep-alive connection; sends prepared requests and times the replies.

    Handles ``Content-Length`` and chunked bodies; for streams it scans the SSE events as
    they arrive for the first content token. A connection the server closed while idle is
    reopened and the request sent once more.
    """

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._tls = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._tls else 80)
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        self._headers = dict(headers)
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = bytearray()

    def prepare(self, path: str, body: bytes) -> bytes:
        """The bytes of one ``POST {prefix}{path}`` request."""
        lines = [
            f"POST {self._prefix}{path} HTTP/1.1",
            f"Host: {self._netloc}",
            "Content-Type: application/json",
            "Accept: */*",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in self._headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buf.clear()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
        self._sock = sock
        return sock

    def send(self, request: bytes, *, stream: bool = False) -> Reply:
        fresh = self._sock is None
        sock = self._sock or self._connect()
        started = time.perf_counter()
        try:
            sock.sendall(request)
            return self._read_reply(sock, started, stream)
        except _StaleConnection:
            self.close()
            if fresh:
                return Reply(0, time.perf_counter() - started)
            return self.send(request, stream=stream)
        except OSError:
            self.close()
            return Reply(0, time.perf_counter() - started)

    def _more(self, sock: socket.socket) -> None:
        data = sock.recv(262144)
        if not data:
            raise ConnectionResetError("connection closed by the server")
        self._buf += data

    def _read_reply(self, sock: socket.socket, started: float, stream: bool) -> Reply:
        buf = self._buf
        while (end := buf.find(b"\r\n\r\n")) < 0:
            try:
                self._more(sock)
            except (ConnectionResetError, BrokenPipeError) as exc:
                if not buf:
                    raise _StaleConnection from exc
                raise
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        status = int(head[0].split(" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in head[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                close = value == "close"
        scanner = _FirstToken(started) if stream and status == 200 else None
        if chunked:
            self._read_chunked(sock, scanner)
        elif length is not None:
            while len(buf) < length:
                self._more(sock)
            if scanner is not None:
                scanner.feed(bytes(buf[:length]))
            del buf[:length]
        else:  # delimited by the end of the connection
            try:
                while True:
                    self._more(sock)
            except ConnectionResetError:
                pass
            if scanner is not None:
                scanner.feed(bytes(buf))
            close = True
        total = time.perf_counter() - started
        if close:
            self.close()
        return Reply(status, total, scanner.at if scanner else None)

    def _read_chunked(self, sock: socket.socket, scanner: _FirstToken | None) -> None:
        buf = self._buf
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                self._more(sock)
            size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            del buf[: eol + 2]
            if size == 0:
                while True:  # trailers, then an empty line
                    while (eol := buf.find(b"\r\n")) < 0:
                        self._more(sock)
                    del buf[: eol + 2]
                    if eol == 0:
                        return
            while len(buf) < size + 2:
                self._more(sock)
            if scanner is not None:
                scanner.feed(bytes(buf[:size]))
            del buf[: size + 2]


class _StaleConnection(Exception):
    """A reused connection was closed before any byte of the reply: resend on a new one."""


class _FirstToken:
    """Scans SSE bytes for the first event carrying a non-empty ``delta.content``."""

    def __init__(self, started: float) -> None:
        self._started = started
        self._pending = b""
        self.at: float | None = None

    def feed(self, data: bytes) -> None:
        if self.at is not None:
            return
        self._pending += data.replace(b"\r\n", b"\n")
        while self.at is None and (end := self._pending.find(b"\n\n")) >= 0:
            event, self._pending = self._pending[:end], self._pending[end + 2 :]
            for line in event.split(b"\n"):
                if line.startswith(b"data:") and _has_content(line[5:].strip()):
                    self.at = time.perf_counter() - self._started
                    break


def _has_content(payload: bytes) -> bool:
    if not payload.startswith(b"{"):
        return False
    try:
        chunk = json.loads(payload)
    except ValueError:
        return False
    for choice in chunk.get("choices") or []:
        if ((choice.get("delta") or {}).get("content")) or choice.get("text"):
            return True
    return False


# -- CPU of process trees -----------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a later reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def tree_pids(pids: Sequence[int]) -> list[int]:
    """``pids`` and all their descendants alive now."""
    out: list[int] = []
    todo = list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(_children(pid))
    return out


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError):  # it may have just exited
            total += process_cpu_seconds(pid)
    return total


@dataclass
class _CpuWindow:
    """CPU seconds of the servers, the upstream, this process's children, this process and
    the whole machine over one window of wall time."""

    servers: list[int]
    upstream: int
    wall: float = 0.0
    server_s: float = 0.0
    upstream_s: float = 0.0
    children_s: float = 0.0
    self_s: float = 0.0
    machine_s: float = 0.0
    _start: tuple[float, ...] = ()

    def _sample(self) -> tuple[float, ...]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            time.monotonic(),
            tree_cpu_seconds(self.servers),
            tree_cpu_seconds([self.upstream]),
            children.ru_utime + children.ru_stime,
            time.process_time(),
            machine_busy_cpu_seconds(),
        )

    def __enter__(self) -> _CpuWindow:
        self._start = self._sample()
        return self

    def __exit__(self, *exc_info: object) -> None:
        end = self._sample()
        (
            self.wall,
            self.server_s,
            self.upstream_s,
            self.children_s,
            self.self_s,
            self.machine_s,
        ) = (b - a for a, b in zip(self._start, end, strict=True))

    def report(self, requests: int, client_s: float) -> dict[str, Any]:
        wall = max(self.wall, 1e-9)
        other = self.machine_s - self.server_s - self.upstream_s - client_s
        return {
            "server_cpu_percent": round(self.server_s / wall * 100, 1) if self.servers else None,
            "server_cpu_us_per_request": (
                round(self.server_s / max(1, requests) * 1e6, 1) if self.servers else None
            ),
            "upstream_cpu_percent": round(self.upstream_s / wall * 100, 1),
            "client_cpu_percent": round(client_s / wall * 100, 1),
            "other_processes_cpu_percent": round(max(0.0, other) / wall * 100, 1),
        }


# -- one in flight ------------------------------------------------------------------------------


def _one_in_flight(
    systems: Sequence[_System],
    *,
    pairs: int,
    warmup: int,
    stream: bool,
    rng: random.Random,
    upstream_pid: int,
) -> dict[str, Any]:
    """Each round sends one request to every system, in a random order; returns the replies
    per system and the CPU window of the measured rounds (the client's CPU included)."""
    clients = {s.name: RawClient(s.base_url, s.headers) for s in systems}
    requests = {
        s.name: clients[s.name].prepare("/chat/completions", chat_body(s.model, stream=stream))
        for s in systems
    }
    replies: dict[str, list[Reply]] = {s.name: [] for s in systems}
    order = [s.name for s in systems]
    server_pids = tree_pids([p for s in systems for p in s.pids])
    try:
        for _ in range(warmup):
            for name in order:
                clients[name].send(requests[name], stream=stream)
        gc.collect()
        gc.disable()
        with _CpuWindow(server_pids, upstream_pid) as window:
            for _ in range(pairs):
                rng.shuffle(order)
                for name in order:
                    replies[name].append(clients[name].send(requests[name], stream=stream))
    finally:
        gc.enable()
        for client in clients.values():
            client.close()
    return {"replies": replies, "window": window}


def _errors(replies: Sequence[Reply]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for reply in replies:
        if reply.status != 200:
            key = str(reply.status) if reply.status else "transport"
            errors[key] = errors.get(key, 0) + 1
    return errors


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 3)


def _paired_median(direct: Sequence[float], through: Sequence[float]) -> float | None:
    diffs = sorted(t - d for d, t in zip(direct, through, strict=True))
    return round(percentile(diffs, 50) * 1000, 3) if diffs else None


def _sequential_report(run: dict[str, Any], system: _System) -> dict[str, Any]:
    replies: dict[str, list[Reply]] = run["replies"]
    window: _CpuWindow = run["window"]
    direct, through = replies["direct"], replies[system.name]
    ok = [(d, t) for d, t in zip(direct, through, strict=True) if d.status == t.status == 200]
    d_lat = [d.total_s for d, _ in ok]
    t_lat = [t.total_s for _, t in ok]
    d_sum, t_sum = latency_summary(d_lat), latency_summary(t_lat)
    return {
        "pairs": len(direct),
        "direct": d_sum,
        "gateway": t_sum,
        "added_p50_ms": _delta(t_sum["p50_ms"], d_sum["p50_ms"]),
        "added_p95_ms": _delta(t_sum["p95_ms"], d_sum["p95_ms"]),
        "added_p99_ms": _delta(t_sum["p99_ms"], d_sum["p99_ms"]),
        "added_mean_ms": _delta(t_sum.get("mean_ms"), d_sum.get("mean_ms")),
        "paired_added_median_ms": _paired_median(d_lat, t_lat),
        "errors": _errors(through),
        "direct_errors": _errors(direct),
        **window.report(len(through), window.self_s),
    }


def _ttft_report(run: dict[str, Any], system: _System) -> dict[str, Any]:
    replies: dict[str, list[Reply]] = run["replies"]
    direct, through = replies["direct"], replies[system.name]
    ok = [
        (d, t)
        for d, t in zip(direct, through, strict=True)
        if d.first_token_s is not None and t.first_token_s is not None
    ]
    d_ttft = latency_summary([d.first_token_s or 0.0 for d, _ in ok])
    t_ttft = latency_summary([t.first_token_s or 0.0 for _, t in ok])
    d_total = latency_summary([d.total_s for d, _ in ok])
    t_total = latency_summary([t.total_s for _, t in ok])
    return {
        "streams": len(direct),
        "direct_ttft": d_ttft,
        "gateway_ttft": t_ttft,
        "added_ttft_p50_ms": _delta(t_ttft["p50_ms"], d_ttft["p50_ms"]),
        "added_ttft_p99_ms": _delta(t_ttft["p99_ms"], d_ttft["p99_ms"]),
        "paired_added_ttft_median_ms": _paired_median(
            [d.first_token_s or 0.0 for d, _ in ok], [t.first_token_s or 0.0 for _, t in ok]
        ),
        "direct_stream_p50_ms": d_total["p50_ms"],
        "gateway_stream_p50_ms": t_total["p50_ms"],
        "added_stream_p50_ms": _delta(t_total["p50_ms"], d_total["p50_ms"]),
        "streams_without_first_token": len(through) - len(ok),
        "errors": _errors(through),
    }


# -- throughput ---------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==========[%(body)s]==========]
%(headers)s
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  statuses = {}
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do
      merged[code] = (merged[code] or 0) + count
    end
  end
  local parts = {}
  for code, count in pairs(merged) do
    table.insert(parts, string.format('"%%d":%%d', code, count))
  end
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"duration_us":%%d,"requests":%%d,"bytes":%%d,' ..
    '"socket_errors":{"connect":%%d,"read":%%d,"write":%%d,"timeout":%%d},' ..
    '"non_2xx":%%d,"statuses":{%%s},' ..
    '"latency_us":{"mean":%%.1f,"p50":%%d,"p90":%%d,"p99":%%d,"p999":%%d,"max":%%d}}\\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status, table.concat(parts, ","),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal of ASCII text is a valid Lua literal


def _wrk_script(body: bytes, headers: Mapping[str, str]) -> str:
    lines = [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()]
    lines.append('wrk.headers["Content-Type"] = "application/json"')
    return _WRK_SCRIPT % {"body": body.decode(), "headers": "\n".join(lines), "mark": _WRK_MARK}


def _run_wrk(wrk: str, url: str, script: Path, concurrency: int, duration: float) -> dict[str, Any]:
    command = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s"]
    command += ["--timeout", "10s", "-s", str(script), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    for line in done.stdout.splitlines():
        if line.startswith(_WRK_MARK):
            parsed: dict[str, Any] = json.loads(line[len(_WRK_MARK) :])
            return parsed
    raise RuntimeError(f"wrk gave no figures (exit {done.returncode}):\n{done.stderr[-2000:]}")


async def _httpx_load(
    url: str, body: bytes, headers: Mapping[str, str], concurrency: int, duration: float
) -> dict[str, Any]:
    """The fallback load generator: ``concurrency`` closed-loop tasks on one AsyncClient."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    transport_errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    all_headers = {**headers, "content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10.0, headers=all_headers) as client:
        stop_at = time.monotonic() + duration

        async def loop() -> None:
            nonlocal transport_errors
            while time.monotonic() < stop_at:
                started = time.perf_counter()
                try:
                    reply = await client.post(url, content=body)
                except httpx.HTTPError:
                    transport_errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                key = str(reply.status_code)
                statuses[key] = statuses.get(key, 0) + 1

        started = time.monotonic()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    values = sorted(latencies)
    return {
        "duration_us": int(elapsed * 1e6),
        "requests": len(latencies),
        "socket_errors": {"connect": 0, "read": transport_errors, "write": 0, "timeout": 0},
        "non_2xx": sum(n for code, n in statuses.items() if not code.startswith("2")),
        "statuses": statuses,
        "latency_us": {
            "mean": sum(values) / len(values) * 1e6 if values else 0.0,
            **{
                key: int(percentile(values, q) * 1e6) if values else 0
                for key, q in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9))
            },
            "max": int(values[-1] * 1e6) if values else 0,
        },
    }


def _load_generator(config: GatewayLoadConfig) -> str | None:
    """The wrk binary, or ``None`` for the httpx fallback."""
    if config.load_generator == "httpx":
        return None
    wrk = shutil.which("wrk")
    if wrk is None and config.load_generator == "wrk":
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    return wrk


def _throughput(
    system: _System,
    concurrency: int,
    config: GatewayLoadConfig,
    upstream_pid: int,
    workdir: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    wrk = _load_generator(config)
    url = system.base_url.rstrip("/") + "/chat/completions"
    body = chat_body(system.model, stream=False)

    script = workdir / f"{system.name}.lua"
    script.write_text(_wrk_script(body, system.headers))

    def generate(duration: float) -> dict[str, Any]:
        if wrk is None:
            return asyncio.run(_httpx_load(url, body, system.headers, concurrency, duration))
        return _run_wrk(wrk, url, script, concurrency, duration)

    if config.warmup > 0:
        generate(config.warmup)
    profiler = _start_profiler(system.pids[0], config.duration, profile) if profile else None
    with _CpuWindow(tree_pids(system.pids), upstream_pid) as window:
        figures = generate(config.duration)
    if profiler is not None:
        profiler.wait(120)
    seconds = figures["duration_us"] / 1e6
    requests = int(figures["requests"])
    statuses: dict[str, int] = figures["statuses"]
    errors = {code: n for code, n in statuses.items() if not code.startswith("2")}
    errors.update({f"socket_{k}": n for k, n in figures["socket_errors"].items() if n})
    lat = figures["latency_us"]
    client_s = window.children_s if wrk else window.self_s
    return {
        "requests_per_s": round(requests / seconds, 1),
        "requests": requests,
        "errors": errors,
        "error_rate": round(sum(errors.values()) / max(1, requests), 5),
        "status_5xx": sum(n for code, n in statuses.items() if code.startswith("5")),
        "latency": {
            "mean_ms": round(lat["mean"] / 1000, 2),
            "p50_ms": round(lat["p50"] / 1000, 2),
            "p90_ms": round(lat["p90"] / 1000, 2),
            "p99_ms": round(lat["p99"] / 1000, 2),
            "p999_ms": round(lat["p999"] / 1000, 2),
            "max_ms": round(lat["max"] / 1000, 2),
        },
        **window.report(requests, client_s),
        # A load generator near one full core measures itself, not the server.
        "client_bound": client_s / max(window.wall, 1e-9) >= 0.9,
        "server_requests_per_cpu_second": (
            round(requests / window.server_s, 1) if system.pids and window.server_s else None
        ),
    }


def _start_profiler(pid: int, duration: float, output: Path) -> subprocess.Popen[bytes]:
    """py-spy over one window, every thread, sampled without pausing the process."""
    here = str(Path(sys.executable).parent)
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=here)
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy; not a dependency)")
    fmt = {".svg": "flamegraph", ".json": "speedscope"}.get(output.suffix, "raw")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, int(duration)))]
    command += ["--rate", "200", "--nonblocking", "--threads", "--format", fmt]
    command += ["--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- the systems under test ---------------------------------------------------------------------


def _check_ok(reply: httpx.Response, what: str) -> dict[str, Any]:
    if reply.status_code >= 300:
        raise RuntimeError(f"{what} failed: {reply.status_code} {reply.text[:500]}")
    data: dict[str, Any] = reply.json()
    return data


def _configure_brokle(server: BrokleServer, password: str, upstream_url: str, budget: bool) -> None:
    """Provider, route, limits (and budget) through the configuration API, as a user would."""
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        login = http.post("/api/v1/auth/login", json={"email": _ADMIN_EMAIL, "password": password})
        token = _check_ok(login, "login")["data"]["token"]
        http.headers["authorization"] = f"Bearer {token}"
        project = f"/api/v1/projects/{server.project_id}"
        provider = {
            "name": "bench",
            "provider": "openai",
            "api_key": "sk-bench-upstream",
            "base_url": upstream_url,
        }
        _check_ok(http.post(project + "/providers", json=provider), "create provider")
        route = {"model": ROUTE_ALIAS, "targets": [{"provider": "bench", "model": UPSTREAM_MODEL}]}
        _check_ok(http.post(project + "/routes", json=route), "create route")
        limit = {"rpm": 10_000_000, "tpm": 10_000_000_000}
        _check_ok(http.post(project + "/rate-limits", json=limit), "create rate limit")
        if budget:
            cap = {"period": "monthly", "limit_usd": 1e9}
            _check_ok(http.post(project + "/budgets", json=cap), "create budget")


def _probe(system: _System) -> None:
    """One request must succeed before anything is measured."""
    reply = httpx.post(
        system.base_url.rstrip("/") + "/chat/completions",
        content=chat_body(system.model, stream=False),
        headers={**system.headers, "content-type": "application/json"},
        timeout=60,
    )
    _check_ok(reply, f"a first request to {system.name}")


@dataclass
class LiteLLMProxy:
    """``litellm --config ... --num_workers 1`` on the upstream, master-key auth, no database."""

    executable: Path
    upstream_url: str
    workdir: Path
    port: int = field(default_factory=free_port)
    master_key: str = field(default_factory=lambda: "sk-bench-" + secrets.token_hex(12))
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 240.0) -> LiteLLMProxy:
        config = self.workdir / "litellm.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {ROUTE_ALIAS}\n"
            "    litellm_params:\n"
            f"      model: openai/{UPSTREAM_MODEL}\n"
            f"      api_base: {self.upstream_url}\n"
            "      api_key: sk-bench-upstream\n"
            "general_settings:\n"
            f"  master_key: {self.master_key}\n"
        )
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        command = [str(self.executable), "--config", str(config), "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--num_workers", "1"]
        with (self.workdir / "litellm.log").open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"litellm exited with {self.process.returncode}:\n{self.log()}")
            try:
                url = f"http://127.0.0.1:{self.port}/health/liveliness"
                if httpx.get(url, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"litellm was not ready in time:\n{self.log()}")

    def log(self) -> str:
        try:
            return (self.workdir / "litellm.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        family = [(pid, _start_ticks(pid)) for pid in tree_pids([self.process.pid])]
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for pid, started in family[1:]:  # workers it started, if any outlived it
            if started is not None and _start_ticks(pid) == started:  # not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def ensure_litellm(log: Callable[[str], None] = print) -> tuple[Path, str]:
    """The ``litellm`` executable and its version; installs ``litellm[proxy]`` into
    :data:`LITELLM_VENV` when this environment lacks it. Raises ``RuntimeError`` if it can't."""
    here = Path(sys.executable).parent / "litellm"
    if here.exists():
        try:
            return here, importlib.metadata.version("litellm")
        except importlib.metadata.PackageNotFoundError:
            pass
    executable = LITELLM_VENV / "bin" / "litellm"
    python = LITELLM_VENV / "bin" / "python"
    if not executable.exists():
        log(f"installing litellm[proxy] into {LITELLM_VENV} (benchmark only; takes a while) ...")
        steps = [
            [sys.executable, "-m", "venv", str(LITELLM_VENV)],
            [str(python), "-m", "pip", "install", "--quiet", "litellm[proxy]"],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
            except (OSError, subprocess.SubprocessError) as exc:
                raise RuntimeError(f"{' '.join(step)}: {exc}") from exc
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step)} failed:\n{done.stderr[-2000:]}")
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if version.returncode != 0 or not executable.exists():
        raise RuntimeError(f"litellm in {LITELLM_VENV} is unusable:\n{version.stderr[-2000:]}")
    return executable, version.stdout.strip()


# -- the run ------------------------------------------------------------------------------------


def _measure(
    system: _System,
    direct: _System,
    config: GatewayLoadConfig,
    upstream_pid: int,
    workdir: Path,
    *,
    pairs: int,
    streams: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """The one-in-flight phases and every concurrency level for one system."""
    rng = random.Random(config.seed)
    _probe(system)
    print(f"  {system.name}: {pairs} sequential pairs ...", flush=True)
    sequential = _one_in_flight(
        [direct, system],
        pairs=pairs,
        warmup=config.warmup_requests,
        stream=False,
        rng=rng,
        upstream_pid=upstream_pid,
    )
    print(f"  {system.name}: {streams} streamed pairs ...", flush=True)
    streamed = _one_in_flight(
        [direct, system],
        pairs=streams,
        warmup=min(config.warmup_requests, 50),
        stream=True,
        rng=rng,
        upstream_pid=upstream_pid,
    )
    result: dict[str, Any] = {
        "sequential": _sequential_report(sequential, system),
        "ttft": _ttft_report(streamed, system),
    }
    for concurrency in config.concurrency:
        print(
            f"  {system.name}: {concurrency} concurrent for {config.duration:g} s ...", flush=True
        )
        result[f"c{concurrency}"] = _throughput(system, concurrency, config, upstream_pid, workdir)
    if profile is not None and system.pids:
        top = max(config.concurrency)
        print(f"  {system.name}: profiling at {top} concurrent into {profile} ...", flush=True)
        profiled = _throughput(system, top, config, upstream_pid, workdir, profile=profile)
        result["profiled_run_requests_per_s"] = profiled["requests_per_s"]
    served = sum(
        sum(1 for r in run["replies"][system.name] if r.status == 200)
        for run in (sequential, streamed)
    )
    served += sum(int(result[f"c{c}"]["requests"]) for c in config.concurrency)
    result["ok_requests_measured"] = served
    return result


def _brokle(
    config: GatewayLoadConfig, upstream: Upstream, direct: _System, workdir: Path
) -> dict[str, Any]:
    password = secrets.token_urlsafe(18)
    env = {"BROKLE_INIT_ADMIN_EMAIL": _ADMIN_EMAIL, "BROKLE_INIT_ADMIN_PASSWORD": password}
    print("starting brokle serve ...", flush=True)
    with BrokleServer(env_overrides=env) as server:
        _configure_brokle(server, password, upstream.base_url, config.budget)
        system = _System(
            "brokle",
            server.base_url + "/v1",
            ROUTE_ALIAS,
            {"Authorization": f"Bearer {server.api_key}"},
            (server.pid,),
        )
        result = _measure(
            system,
            direct,
            config,
            upstream.pid,
            workdir,
            pairs=config.sequential,
            streams=config.streams,
            profile=config.profile,
        )
        rss, peak = process_rss_bytes(server.pid)
        result["server_rss_mb"] = round(rss / 2**20)
        result["server_rss_peak_mb"] = round(peak / 2**20)
        spans = parse_gauges(server.metrics_text(), "brokle_gateway_spans")
        result["gateway_spans"] = {k: int(v) for k, v in spans.items()}
        result["shutdown_s"] = round(server.stop(), 2)
        result["server_log_errors"] = _logged_errors(server.log_path)
        # Tracing was on: every call the gateway served is a span in its store.
        stored = query_store(
            server.data_dir,
            "SELECT count() AS spans FROM spans "
            "WHERE project_id = {project:String} AND service_name = 'brokle-gateway'",
            project=server.project_id,
        )
        result["gateway_spans_stored"] = int(stored[0]["spans"])
    return result


def _logged_errors(log_path: Path) -> dict[str, int]:
    """Error-level log events of a run, by exception class (else by message): unhandled
    errors behind a 5xx, or requests whose client went away as a load phase ended. One failure
    may be logged twice (by the app and by uvicorn)."""
    counts: dict[str, int] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("level") not in ("error", "critical"):
            continue
        if event.get("exc_info"):
            kind = str(event["exc_info"][0])
        elif event.get("exception"):
            kind = str(event["exception"]).strip().splitlines()[-1].split(":")[0]
        else:
            kind = str(event.get("event", ""))
        kind = kind.strip("<>").removeprefix("class ").strip("'").rsplit(".", 1)[-1][:40]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _litellm(
    config: GatewayLoadConfig, upstream: Upstream, direct: _System, workdir: Path
) -> dict[str, Any]:
    try:
        executable, version = ensure_litellm()
    except RuntimeError as exc:
        print(f"LiteLLM skipped: {exc}", file=sys.stderr, flush=True)
        return {"skipped": str(exc)[:500]}
    print(f"starting litellm {version} ...", flush=True)
    proxy = LiteLLMProxy(executable, upstream.base_url, workdir)
    try:
        proxy.start()
    except RuntimeError as exc:
        print(f"LiteLLM skipped: {exc}", file=sys.stderr, flush=True)
        return {"skipped": str(exc)[:1000], "version": version}
    try:
        assert proxy.process is not None
        system = _System(
            "litellm",
            proxy.base_url,
            ROUTE_ALIAS,
            {"Authorization": f"Bearer {proxy.master_key}"},
            (proxy.process.pid,),
        )
        result = _measure(
            system,
            direct,
            config,
            upstream.pid,
            workdir,
            pairs=config.litellm_sequential,
            streams=config.litellm_streams,
        )
        result["server_rss_mb"] = round(
            sum(process_rss_bytes(p)[0] for p in tree_pids(system.pids)) / 2**20
        )
    finally:
        proxy.stop()
    return {"version": version, "workers": 1, **result}


def _target(
    config: GatewayLoadConfig, upstream: Upstream, direct: _System, workdir: Path
) -> dict[str, Any]:
    assert config.target is not None
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    pids = (config.target_pid,) if config.target_pid else ()
    system = _System("target", config.target, config.model, headers, pids)
    return {
        "url": config.target,
        **_measure(
            system,
            direct,
            config,
            upstream.pid,
            workdir,
            pairs=config.sequential,
            streams=config.streams,
        ),
    }


def _ratio(value: float | None, target: float) -> float | None:
    return None if value is None else round(value / target, 3)


def _summary(result: dict[str, Any], config: GatewayLoadConfig) -> dict[str, Any]:
    """The headline figures against the issue's targets, and Brokle over LiteLLM."""
    name = "target" if config.target else "brokle"
    gw = result[name]
    top = max(config.concurrency)
    out: dict[str, Any] = {
        "added_p50_ms": gw["sequential"]["added_p50_ms"],
        "added_p99_ms": gw["sequential"]["added_p99_ms"],
        "added_p50_ratio_to_target": _ratio(gw["sequential"]["added_p50_ms"], TARGET_ADDED_P50_MS),
        "added_p99_ratio_to_target": _ratio(gw["sequential"]["added_p99_ms"], TARGET_ADDED_P99_MS),
        "added_ttft_p50_ms": gw["ttft"]["added_ttft_p50_ms"],
        **{f"rps_c{c}": gw[f"c{c}"]["requests_per_s"] for c in config.concurrency},
        f"status_5xx_c{top}": gw[f"c{top}"]["status_5xx"],
    }
    lite = result.get("litellm") or {}
    if "sequential" in lite:
        for c in config.concurrency:
            ratio = gw[f"c{c}"]["requests_per_s"] / max(1e-9, lite[f"c{c}"]["requests_per_s"])
            out[f"rps_vs_litellm_c{c}"] = round(ratio, 2)
        ours = gw[f"c{top}"]["server_requests_per_cpu_second"]
        theirs = lite[f"c{top}"]["server_requests_per_cpu_second"]
        if ours and theirs:
            out[f"per_cpu_second_vs_litellm_c{top}"] = round(ours / theirs, 2)
        out["litellm_added_p50_ms"] = lite["sequential"]["added_p50_ms"]
        out["litellm_added_p99_ms"] = lite["sequential"]["added_p99_ms"]
        out["litellm_added_ttft_p50_ms"] = lite["ttft"]["added_ttft_p50_ms"]
        out[f"throughput_vs_litellm_ratio_to_target_c{top}"] = _ratio(
            out[f"rps_vs_litellm_c{top}"], TARGET_THROUGHPUT_VS_LITELLM
        )
    return out


def run(config: GatewayLoadConfig) -> Result:
    """Start the upstream (and Brokle, LiteLLM), measure every phase; return the figures."""
    wrk = _load_generator(config)
    workdir = Path(tempfile.mkdtemp(prefix="brokle-gw-bench-"))
    result: dict[str, Any] = {
        "config": {
            "sequential_pairs": config.sequential,
            "stream_pairs": config.streams,
            "concurrency": list(config.concurrency),
            "duration_s": config.duration,
            "warmup_s": config.warmup,
            "stream_interval_ms": config.stream_interval_ms,
            "load_generator": "wrk -t1" if wrk else "httpx (one process)",
            "request_bytes": len(chat_body(ROUTE_ALIAS, stream=False)),
            "brokle_budget": config.budget,
        },
    }
    try:
        with Upstream(config.upstream_port, stream_interval_ms=config.stream_interval_ms) as up:
            print(f"upstream at {up.base_url}", flush=True)
            direct_url = config.direct or up.base_url
            direct = _System("direct", direct_url, UPSTREAM_MODEL, {})
            result["direct"] = {
                f"c{c}": _throughput(direct, c, config, up.pid, workdir) for c in config.concurrency
            }
            if config.target:
                result["target"] = _target(config, up, direct, workdir)
            else:
                result["brokle"] = _brokle(config, up, direct, workdir)
            if config.litellm:
                result["litellm"] = _litellm(config, up, direct, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["summary"] = _summary(result, config)
    result["machine"] = {"cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)}
    return result


def bench(quick: bool) -> Result:
    """Harness entry point: the default configuration, shorter with ``quick``."""
    return run(QUICK if quick else GatewayLoadConfig())


def main(argv: list[str] | None = None) -> int:
    defaults = GatewayLoadConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="short runs (ignores the sizes and durations below)"
    )
    parser.add_argument("--sequential", type=int, default=defaults.sequential)
    parser.add_argument("--streams", type=int, default=defaults.streams)
    parser.add_argument("--warmup-requests", type=int, default=defaults.warmup_requests)
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(defaults.concurrency))
    parser.add_argument("--duration", type=float, default=defaults.duration)
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--stream-interval-ms", type=float, default=defaults.stream_interval_ms)
    parser.add_argument(
        "--litellm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="run LiteLLM's proxy side by side (default: on, off with --target)",
    )
    parser.add_argument("--litellm-sequential", type=int, default=defaults.litellm_sequential)
    parser.add_argument("--litellm-streams", type=int, default=defaults.litellm_streams)
    parser.add_argument("--budget", action="store_true", help="give Brokle's project a budget")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--target", help="an OpenAI-compatible base URL (…/v1) to benchmark")
    parser.add_argument("--model", default=defaults.model, help="model sent to --target")
    parser.add_argument("--api-key", default="", help="bearer key sent to --target")
    parser.add_argument("--target-pid", type=int, help="the target's pid, for its CPU")
    parser.add_argument("--direct", help="baseline base URL (default: the local upstream)")
    parser.add_argument("--upstream-port", type=int, help="port of the local upstream")
    parser.add_argument(
        "--profile", type=Path, help="py-spy Brokle at the top concurrency into .svg/.json/.txt"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write a results file")
    args = parser.parse_args(argv)
    base = (
        QUICK
        if args.quick
        else GatewayLoadConfig(
            sequential=args.sequential,
            streams=args.streams,
            warmup_requests=args.warmup_requests,
            duration=args.duration,
            warmup=args.warmup,
            litellm_sequential=args.litellm_sequential,
            litellm_streams=args.litellm_streams,
        )
    )
    config = dataclasses.replace(
        base,
        concurrency=tuple(args.concurrency),
        stream_interval_ms=args.stream_interval_ms,
        litellm=args.litellm if args.litellm is not None else args.target is None,
        budget=args.budget,
        load_generator=args.load_generator,
        target=args.target,
        model=args.model,
        api_key=args.api_key,
        target_pid=args.target_pid,
        direct=args.direct,
        upstream_port=args.upstream_port,
        profile=args.profile.resolve() if args.profile else None,
    )
    started = datetime.now(UTC)
    result = run(config)
    path = None
    if not args.no_write:
        path = write_result("gateway_load", result, quick=args.quick, started_at=started)
    print_result("gateway_load", result, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
