"""Ingest under load: concurrent OTLP/HTTP protobuf clients against a real ``brokle serve``.

A fresh server runs in embedded mode (spool + chDB in a temporary data directory, rate limits
raised out of the way). ``--clients`` asyncio tasks, spread over ``--procs`` client processes
(default 1) that each share one keep-alive ``httpx.AsyncClient``, post
``ExportTraceServiceRequest`` bodies of ``--batch`` realistic LLM spans to ``/v1/traces`` for
``--duration`` seconds after a ``--warmup``: 13 attributes (gen_ai provider, models,
operation, temperature, tokens, finish reasons, user.id, session.id, a ~1 KB
``gen_ai.input.messages`` prompt and a completion), five spans per trace under one root.

Bodies are serialised before the clock starts. Every request still carries new ids: the
trace/span ids of a template body hold a 4-byte request sequence number at known offsets,
patched per request (well under a millisecond), so every span of the run is unique and the
final store count can be compared with what was acknowledged.

Reported: requests/s, accepted spans/s and MB/s in the measured window; ack latency
percentiles (closed loop by default; with ``--rate`` each task sends on a fixed schedule and
latency counts from the scheduled time, so a server falling behind shows it); errors by
status; how fast the writers drained during the load and the backlog at its end; the delay
from the last acknowledgement until every acknowledged span was written to the store (polled
every 10 ms on ``/metrics``, ``brokle_pipeline{name="rows_written"}``: inserts are
synchronous, so written means queryable); the server's CPU% (100% = one core), CPU per span
and RSS; the clients' own CPU, and what other processes took (a shared machine skews
everything); and, after stopping the server, the span count in its store against the
acknowledged count.

Run: ``python -m benchmarks ingest_load [--quick]`` or, with options,
``python -m benchmarks.ingest_load --clients 8 --batch 500 --duration 20 [--rate 50000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from benchmarks.common import (
    BrokleServer,
    Result,
    latency_summary,
    machine_busy_cpu_seconds,
    parse_gauges,
    print_result,
    process_cpu_seconds,
    process_rss_bytes,
    query_store,
    write_result,
)

# The targets, reported as ratios (never pass/fail).
TARGET_SPANS_PER_S = 50_000
TARGET_P99_ACK_MS = 50.0
TARGET_QUERYABLE_S = 2.0

_SEQ_BYTES = 4
_POLL_INTERVAL_S = 0.01
_QUERYABLE_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class LoadConfig:
    clients: int = 8
    """Concurrent requests in flight (asyncio tasks), over all client processes."""
    procs: int = 1
    """Client processes; the clients are spread over them."""
    batch: int = 500
    """Spans per request."""
    spans_per_trace: int = 5
    duration: float = 20.0
    """Measured seconds."""
    warmup: float = 2.0
    """Seconds of load before the measured window (connections, caches, first parts)."""
    rate: float | None = None
    """Offered spans/s over all clients; ``None`` for a closed loop (as fast as acked)."""
    templates: int = 8
    """Distinct pre-built bodies per client process (each reused with fresh ids)."""
    server_env: dict[str, str] = field(default_factory=dict)
    """Extra ``BROKLE_*`` settings for the server (e.g. pipeline tuning)."""
    profile: Path | None = None
    """Record the server with py-spy (``--gil``) over the measured window into this file:
    ``.svg`` a flame graph, ``.json`` speedscope, anything else py-spy's raw stacks."""


# -- realistic LLM spans ------------------------------------------------------------------

_VOCABULARY = (
    "the customer asked about their invoice for last month and whether the discount was "
    "applied correctly to the enterprise plan please summarise the conversation below and "
    "list follow up actions with owners deadlines risks open questions context retrieved "
    "documents policy refund shipping account security latency model answer tool result "
    "search query vector store embedding chunk citation source page paragraph table figure"
)
_WORDS = _VOCABULARY.split()
_MODELS = (
    ("openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18"),
    ("openai", "gpt-4o", "gpt-4o-2024-08-06"),
    ("anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet-20241022"),
    ("google", "gemini-1.5-flash", "gemini-1.5-flash-002"),
)


def _text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words)


def _kv(key: str, value: str | int | float | list[str]) -> KeyValue:
    if isinstance(value, str):
        return KeyValue(key=key, value=AnyValue(string_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    items = [AnyValue(string_value=v) for v in value]
    return KeyValue(key=key, value=AnyValue(array_value=ArrayValue(values=items)))


def _llm_attributes(rng: random.Random, span_type: str) -> list[KeyValue]:
    provider, model, response_model = rng.choice(_MODELS)
    prompt = [
        {"role": "system", "content": _text(rng, 200)},
        {"role": "user", "content": _text(rng, 800)},
    ]
    completion = [{"role": "assistant", "content": _text(rng, 250)}]
    return [
        _kv("brokle.span.type", span_type),
        _kv("gen_ai.operation.name", "chat"),
        _kv("gen_ai.provider.name", provider),
        _kv("gen_ai.request.model", model),
        _kv("gen_ai.response.model", response_model),
        _kv("gen_ai.request.temperature", rng.choice((0.0, 0.2, 0.7, 1.0))),
        _kv("gen_ai.usage.input_tokens", rng.randint(150, 400)),
        _kv("gen_ai.usage.output_tokens", rng.randint(20, 120)),
        _kv("gen_ai.response.finish_reasons", ["stop"]),
        _kv("user.id", f"user-{rng.randint(1, 500)}"),
        _kv("session.id", f"session-{rng.randint(1, 2000)}"),
        _kv("gen_ai.input.messages", json.dumps(prompt)),
        _kv("gen_ai.output.messages", json.dumps(completion)),
    ]


class BodyTemplate:
    """A serialised request whose ids carry a placeholder sequence number at known offsets.

    Ids: trace = 8-byte run nonce | sequence | trace index; span = sequence | span index
    (the parent id of a child is its root's span id). Patching the sequence at every offset
    gives a body whose ids were never used before in the run.
    """

    def __init__(self, body: bytes, offsets: list[int], spans: int) -> None:
        self.body = body
        self.offsets = offsets
        self.spans = spans

    def render(self, seq: int) -> bytes:
        buf = bytearray(self.body)
        stamp = seq.to_bytes(_SEQ_BYTES, "big")
        for offset in self.offsets:
            buf[offset : offset + _SEQ_BYTES] = stamp
        return bytes(buf)

    @classmethod
    def build(
        cls, rng: random.Random, spans: int, spans_per_trace: int, nonce: bytes, now_ns: int
    ) -> BodyTemplate:
        # Distinct random placeholders for trace and span ids, so the byte search below
        # finds exactly the id fields and never text, or a span id inside a trace id.
        trace_mark, span_mark = rng.randbytes(_SEQ_BYTES), rng.randbytes(_SEQ_BYTES)
        request = ExportTraceServiceRequest()
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(
            [
                _kv("service.name", "support-agent"),
                _kv("service.version", "1.14.2"),
                _kv("deployment.environment.name", "production"),
                _kv("telemetry.sdk.language", "python"),
                _kv("telemetry.sdk.name", "opentelemetry"),
                _kv("telemetry.sdk.version", "1.27.0"),
            ]
        )
        scope_spans: ScopeSpans = resource_spans.scope_spans.add()
        scope_spans.scope.name = "brokle"
        scope_spans.scope.version = "0.4.0"
        trace_ids: list[bytes] = []
        span_ids: list[bytes] = []
        root = b""
        trace_id = b""
        for index in range(spans):
            if index % spans_per_trace == 0:
                trace_id = nonce + trace_mark + (index // spans_per_trace + 1).to_bytes(4, "big")
                trace_ids.append(trace_id)
            span_id = span_mark + (index + 1).to_bytes(4, "big")
            span_ids.append(span_id)
            is_root = index % spans_per_trace == 0
            if is_root:
                root = span_id
            start = now_ns - rng.randint(1_000, 60_000) * 1_000_000
            span = scope_spans.spans.add(
                trace_id=trace_id,
                span_id=span_id,
                parent_span_id=b"" if is_root else root,
                name="agent.run" if is_root else f"chat {rng.choice(_MODELS)[1]}",
                kind=Span.SPAN_KIND_INTERNAL if is_root else Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randint(200, 4_000) * 1_000_000,
            )
            span.attributes.extend(_llm_attributes(rng, "agent" if is_root else "generation"))
            span.status.code = Status.STATUS_CODE_OK
        body = request.SerializeToString()
        offsets: list[int] = []
        for trace_id in trace_ids:
            offsets += [pos + len(nonce) for pos in _find_all(body, trace_id)]
        for span_id in span_ids:
            offsets += _find_all(body, span_id)
        expected = spans * 2 + spans - len(trace_ids)  # trace + span id each, child parents
        if len(offsets) != expected:
            raise RuntimeError(f"id placeholders found {len(offsets)} times, expected {expected}")
        return cls(body, sorted(offsets), spans)


def _find_all(haystack: bytes, needle: bytes) -> list[int]:
    found = []
    pos = haystack.find(needle)
    while pos >= 0:
        found.append(pos)
        pos = haystack.find(needle, pos + 1)
    return found


def _check_template(template: BodyTemplate) -> None:
    """Two renders parse, and share no (trace id, span id)."""
    seen: set[tuple[bytes, bytes]] = set()
    for seq in (1, 2):
        request = ExportTraceServiceRequest.FromString(template.render(seq))
        for span in request.resource_spans[0].scope_spans[0].spans:
            key = (span.trace_id, span.span_id)
            if key in seen or span.trace_id[8:12] != seq.to_bytes(4, "big"):
                raise RuntimeError("body template ids were not patched as expected")
            seen.add(key)


# -- client processes ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schedule:
    """Monotonic times (shared by every process on Linux) that phase the load."""

    start_at: float
    measure_at: float
    stop_at: float


@dataclass(frozen=True)
class _ClientSpec:
    url: str
    api_key: str
    proc_index: int
    procs: int
    clients: int
    batch: int
    spans_per_trace: int
    templates: int
    interval: float | None
    """Seconds between two sends of one task when paced, ``None`` for a closed loop."""


@dataclass
class _ClientStats:
    latencies: list[float] = field(default_factory=list)
    window_requests: int = 0
    window_spans: int = 0
    window_bytes: int = 0
    requests: int = 0
    acked_spans: int = 0
    rejected_spans: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    last_ack_at: float = 0.0
    cpu_window_s: float = 0.0
    render_s: float = 0.0
    renders: int = 0
    body_bytes: int = 0

    def error(self, key: str) -> None:
        self.errors[key] = self.errors.get(key, 0) + 1


def _client_process(conn: Connection, spec: _ClientSpec) -> None:
    """Entry point of one client process: build bodies, report ready, run, report stats."""
    rng = random.Random(1000 + spec.proc_index)
    nonce, now_ns = os.urandom(8), time.time_ns()
    pool = [
        BodyTemplate.build(rng, spec.batch, spec.spans_per_trace, nonce, now_ns)
        for _ in range(spec.templates)
    ]
    for template in pool:
        _check_template(template)
    conn.send(sum(len(t.body) for t in pool) // len(pool))
    schedule: _Schedule = conn.recv()
    stats = asyncio.run(_drive(spec, pool, schedule))
    conn.send(asdict(stats))
    conn.close()


async def _drive(spec: _ClientSpec, pool: list[BodyTemplate], schedule: _Schedule) -> _ClientStats:
    stats = _ClientStats(body_bytes=len(pool[0].body))
    counter = itertools.count()

    def next_seq() -> int:
        # Unique over all client processes; never 0, so no id is all zeros.
        return 1 + spec.proc_index + spec.procs * next(counter)

    limits = httpx.Limits(max_connections=spec.clients, max_keepalive_connections=spec.clients)
    headers = {"X-API-Key": spec.api_key, "Content-Type": "application/x-protobuf"}
    async with httpx.AsyncClient(
        base_url=spec.url, limits=limits, headers=headers, timeout=httpx.Timeout(120.0)
    ) as client:
        await asyncio.sleep(max(0.0, schedule.start_at - time.monotonic()))
        tasks = [
            asyncio.create_task(_client_loop(client, pool, next_seq, stats, i, spec, schedule))
            for i in range(spec.clients)
        ]
        await asyncio.sleep(max(0.0, schedule.measure_at - time.monotonic()))
        cpu_start = time.process_time()
        await asyncio.sleep(max(0.0, schedule.stop_at - time.monotonic()))
        stats.cpu_window_s = time.process_time() - cpu_start
        await asyncio.gather(*tasks)
    return stats


async def _client_loop(
    client: httpx.AsyncClient,
    pool: list[BodyTemplate],
    next_seq: Callable[[], int],
    stats: _ClientStats,
    index: int,
    spec: _ClientSpec,
    schedule: _Schedule,
) -> None:
    interval = spec.interval
    # Paced tasks start staggered over one interval so that the sends spread evenly.
    scheduled = schedule.start_at + (interval * index / spec.clients if interval else 0.0)
    while True:
        if interval is not None:
            await asyncio.sleep(max(0.0, scheduled - time.monotonic()))
        now = time.monotonic()
        if now >= schedule.stop_at:
            return
        # Paced: latency counts from the planned send time (no coordinated omission).
        sent_at = scheduled if interval is not None else now
        if interval is not None:
            scheduled += interval
        seq = next_seq()
        template = pool[seq % len(pool)]
        cpu = time.thread_time()
        body = template.render(seq)
        stats.render_s += time.thread_time() - cpu
        stats.renders += 1
        try:
            reply = await client.post("/v1/traces", content=body)
        except httpx.HTTPError as exc:
            stats.error(f"transport:{type(exc).__name__}")
            await asyncio.sleep(0.1)
            continue
        done_at = time.monotonic()
        stats.requests += 1
        if reply.status_code != 200:
            stats.error(str(reply.status_code))
            if reply.status_code in (429, 503):  # back off as an OTLP exporter would
                await asyncio.sleep(min(float(reply.headers.get("retry-after") or 1), 1.0))
            continue
        rejected = 0
        if reply.content:
            response = ExportTraceServiceResponse.FromString(reply.content)
            rejected = response.partial_success.rejected_spans
        accepted = template.spans - rejected
        stats.acked_spans += accepted
        stats.rejected_spans += rejected
        stats.last_ack_at = max(stats.last_ack_at, done_at)
        if sent_at >= schedule.measure_at:
            stats.latencies.append(done_at - sent_at)
        if schedule.measure_at <= done_at <= schedule.stop_at:
            stats.window_requests += 1
            stats.window_spans += accepted
            stats.window_bytes += len(body)


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ServerSample:
    """The server's own counters, read from /metrics at monotonic time ``at``."""

    at: float
    rows_written: float
    accepted_spans: float


def _sample(server: BrokleServer, http: httpx.Client) -> _ServerSample:
    text = server.metrics_text(http)
    return _ServerSample(
        time.monotonic(),
        parse_gauges(text, "brokle_pipeline").get("rows_written", 0.0),
        parse_gauges(text, "brokle_ingest_accepted_rows").get("spans", 0.0),
    )


@dataclass
class _Observed:
    """Everything measured on the server side of one run."""

    schedule: _Schedule
    baseline: _ServerSample
    at_measure: _ServerSample
    at_stop: _ServerSample
    final: _ServerSample
    cpu_at_measure: float
    cpu_at_stop: float
    cpu_at_end: float
    machine_busy_s: float
    rss_end: int
    rss_peak: int
    clients: list[dict[str, Any]]
    body_bytes: list[int]
    shutdown_s: float = 0.0
    stored: dict[str, Any] = field(default_factory=dict)

    @property
    def acked(self) -> int:
        return sum(int(c["acked_spans"]) for c in self.clients)

    @property
    def written(self) -> float:
        return self.final.rows_written - self.baseline.rows_written

    @property
    def time_to_queryable(self) -> float | None:
        if self.written < self.acked:
            return None
        load_end = max(float(c["last_ack_at"]) for c in self.clients)
        return max(0.0, self.final.at - load_end)


def run(config: LoadConfig) -> Result:
    """Start a server, load it, measure, stop it, verify the store; return the figures."""
    if config.clients < config.procs:
        raise ValueError("need at least one client per process")
    with BrokleServer(env_overrides=config.server_env) as server:
        ctx = multiprocessing.get_context("spawn")
        interval = config.batch * config.clients / config.rate if config.rate else None
        workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        try:
            for index in range(config.procs):
                spec = _ClientSpec(
                    url=server.base_url,
                    api_key=server.api_key,
                    proc_index=index,
                    procs=config.procs,
                    clients=config.clients // config.procs
                    + (1 if index < config.clients % config.procs else 0),
                    batch=config.batch,
                    spans_per_trace=config.spans_per_trace,
                    templates=config.templates,
                    interval=interval,
                )
                parent_end, child_end = ctx.Pipe()
                process = ctx.Process(target=_client_process, args=(child_end, spec), daemon=True)
                process.start()
                child_end.close()
                workers.append((process, parent_end))
            observed = _observe(server, config, [conn for _, conn in workers])
        finally:
            for worker, conn in workers:
                conn.close()
                worker.join(10)
                if worker.is_alive():
                    worker.terminate()
        observed.shutdown_s = server.stop()
        # The store belongs to the server while it runs: count once it has stopped.
        observed.stored = query_store(
            server.data_dir,
            "SELECT count() AS spans, uniqExact(trace_id, span_id) AS unique_ids "
            "FROM spans WHERE project_id = {project:String}",
            project=server.project_id,
        )[0]
    return _report(config, observed)


def _observe(server: BrokleServer, config: LoadConfig, conns: list[Connection]) -> _Observed:
    body_bytes = []
    for conn in conns:
        if not conn.poll(120):
            raise RuntimeError("a client process did not get ready")
        body_bytes.append(conn.recv())
    http = httpx.Client(timeout=10)
    baseline = _sample(server, http)
    start_at = time.monotonic() + 0.3
    schedule = _Schedule(
        start_at, start_at + config.warmup, start_at + config.warmup + config.duration
    )
    for conn in conns:
        conn.send(schedule)

    time.sleep(max(0.0, schedule.measure_at - time.monotonic()))
    at_measure = _sample(server, http)
    profiler = _start_profiler(server.pid, config) if config.profile else None
    cpu_at_measure, busy_at_measure = process_cpu_seconds(server.pid), machine_busy_cpu_seconds()
    rss_peak = 0
    while (left := schedule.stop_at - time.monotonic()) > 0:
        rss_peak = max(rss_peak, process_rss_bytes(server.pid)[0])
        time.sleep(min(0.25, left))
    cpu_at_stop, busy_at_stop = process_cpu_seconds(server.pid), machine_busy_cpu_seconds()
    if profiler is not None:
        profiler.wait(60)
    at_stop = _sample(server, http)

    # Poll /metrics until every client has reported and the writers have written every
    # acknowledged span: inserts are synchronous, so a written row is a queryable row.
    clients: list[dict[str, Any]] = []
    pending = list(conns)
    last = at_stop
    while time.monotonic() < schedule.stop_at + _QUERYABLE_TIMEOUT_S:
        for conn in [c for c in pending if c.poll()]:
            clients.append(conn.recv())
            pending.remove(conn)
        if not pending:
            acked = sum(int(c["acked_spans"]) for c in clients)
            if last.rows_written - baseline.rows_written >= acked:
                break
        time.sleep(_POLL_INTERVAL_S)
        last = _sample(server, http)
    http.close()
    if pending:
        raise RuntimeError("client processes did not report")
    rss_end, rss_hwm = process_rss_bytes(server.pid)
    return _Observed(
        schedule=schedule,
        baseline=baseline,
        at_measure=at_measure,
        at_stop=at_stop,
        final=last,
        cpu_at_measure=cpu_at_measure,
        cpu_at_stop=cpu_at_stop,
        cpu_at_end=process_cpu_seconds(server.pid),
        machine_busy_s=busy_at_stop - busy_at_measure,
        rss_end=rss_end,
        rss_peak=max(rss_hwm, rss_peak),
        clients=clients,
        body_bytes=body_bytes,
    )


def _start_profiler(pid: int, config: LoadConfig) -> subprocess.Popen[bytes]:
    """py-spy over the measured window; only what holds the GIL, sampled without pausing."""
    assert config.profile is not None
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        raise RuntimeError("--profile needs py-spy (pip install py-spy; not a dependency)")
    formats = {".svg": "flamegraph", ".json": "speedscope"}
    fmt = formats.get(config.profile.suffix, "raw")
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(int(config.duration))]
    command += ["--rate", "100", "--gil", "--nonblocking", "--format", fmt]
    command += ["--output", str(config.profile)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL)


def _ratio(value: float | None, target: float) -> float | None:
    return None if value is None else round(value / target, 3)


def _report(config: LoadConfig, o: _Observed) -> Result:
    duration = config.duration
    clients = o.clients
    window_spans = sum(c["window_spans"] for c in clients)
    errors: dict[str, int] = {}
    for c in clients:
        for key, count in c["errors"].items():
            errors[key] = errors.get(key, 0) + count
    ack = latency_summary([x for c in clients for x in c["latencies"]])
    spans_per_s = window_spans / duration
    queryable = o.time_to_queryable
    server_cpu = o.cpu_at_stop - o.cpu_at_measure
    client_cpu = sum(c["cpu_window_s"] for c in clients)
    drain_s = max(1e-3, o.final.at - o.schedule.stop_at)
    stored_spans, stored_ids = int(o.stored["spans"]), int(o.stored["unique_ids"])
    return {
        "config": {
            "clients": config.clients,
            "client_processes": config.procs,
            "spans_per_request": config.batch,
            "spans_per_trace": config.spans_per_trace,
            "duration_s": duration,
            "warmup_s": config.warmup,
            "offered_spans_per_s": config.rate,
            "request_kb": round(sum(o.body_bytes) / len(o.body_bytes) / 1024, 1),
            "server_env": config.server_env,
        },
        "load": {
            "requests_per_s": round(sum(c["window_requests"] for c in clients) / duration, 1),
            "accepted_spans_per_s": round(spans_per_s),
            "mb_per_s": round(sum(c["window_bytes"] for c in clients) / duration / 1e6, 1),
            "requests_total": sum(c["requests"] for c in clients),
            "acked_spans_total": o.acked,
            "rejected_spans": sum(c["rejected_spans"] for c in clients),
            "errors": errors,
        },
        "ack_latency": ack,
        "pipeline": {
            "written_spans_per_s_during_load": round(
                (o.at_stop.rows_written - o.at_measure.rows_written) / duration
            ),
            "backlog_spans_at_load_stop": round(o.at_stop.accepted_spans - o.at_stop.rows_written),
            "time_to_queryable_s": None if queryable is None else round(queryable, 3),
            "written_spans": round(o.written),
            "server_accepted_spans": round(o.final.accepted_spans - o.baseline.accepted_spans),
            "store_spans_after_stop": stored_spans,
            "store_unique_ids_after_stop": stored_ids,
            "store_matches_acked": stored_spans == stored_ids == o.acked,
        },
        "server": {
            "cpu_percent_during_load": round(server_cpu / duration * 100, 1),
            "cpu_percent_after_load": round((o.cpu_at_end - o.cpu_at_stop) / drain_s * 100, 1),
            "cpu_us_per_acked_span_during_load": round(server_cpu / max(1, window_spans) * 1e6, 1),
            # Decode and write, measured until the writers caught up: a span's whole cost.
            "cpu_us_per_span_end_to_end": round(
                (o.cpu_at_end - o.cpu_at_measure)
                / max(1.0, o.final.rows_written - o.at_measure.rows_written)
                * 1e6,
                1,
            ),
            "rss_mb_at_end": round(o.rss_end / 2**20),
            "rss_mb_peak": round(o.rss_peak / 2**20),
            "shutdown_s": round(o.shutdown_s, 2),
        },
        "client": {
            "cpu_percent": round(client_cpu / duration * 100, 1),
            "cpu_us_per_span": round(client_cpu / max(1, window_spans) * 1e6, 1),
            "render_us_per_request": round(
                sum(c["render_s"] for c in clients)
                / max(1, sum(c["renders"] for c in clients))
                * 1e6,
                1,
            ),
        },
        "machine": {
            "cores": os.cpu_count(),
            "busy_cpu_percent_during_load": round(o.machine_busy_s / duration * 100, 1),
            # Other processes on a shared machine take CPU from the server: read results
            # with this in mind.
            "other_processes_cpu_percent": round(
                max(0.0, o.machine_busy_s - server_cpu - client_cpu) / duration * 100, 1
            ),
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "vs_target": {
            "spans_per_s_ratio": _ratio(spans_per_s, TARGET_SPANS_PER_S),
            "p99_ack_ratio": _ratio(ack["p99_ms"], TARGET_P99_ACK_MS),
            "time_to_queryable_ratio": _ratio(queryable, TARGET_QUERYABLE_S),
        },
    }


def bench(quick: bool) -> Result:
    """Harness entry point: the default configuration, shorter with ``quick``."""
    return run(LoadConfig(duration=5.0, warmup=1.0) if quick else LoadConfig())


def main(argv: list[str] | None = None) -> int:
    defaults = LoadConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clients", type=int, default=defaults.clients)
    parser.add_argument("--procs", type=int, default=defaults.procs, help="client processes")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="spans per request")
    parser.add_argument("--spans-per-trace", type=int, default=defaults.spans_per_trace)
    parser.add_argument("--duration", type=float, default=defaults.duration)
    parser.add_argument("--warmup", type=float, default=defaults.warmup)
    parser.add_argument("--rate", type=float, default=None, help="offered spans/s (paced)")
    parser.add_argument("--templates", type=int, default=defaults.templates)
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra server environment, e.g. BROKLE_PIPELINE__BATCH_ROWS=20000 (repeatable)",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the server into this .svg/.json/.txt"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write a results file")
    args = parser.parse_args(argv)
    config = LoadConfig(
        clients=args.clients,
        procs=args.procs,
        batch=args.batch,
        spans_per_trace=args.spans_per_trace,
        duration=args.duration,
        warmup=args.warmup,
        rate=args.rate,
        templates=args.templates,
        server_env=dict(item.split("=", 1) for item in args.server_env),
        profile=args.profile,
    )
    started = datetime.now(UTC)
    result = run(config)
    path = None
    if not args.no_write:
        path = write_result("ingest_load", result, quick=False, started_at=started)
    print_result("ingest_load", result, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
