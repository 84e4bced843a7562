"""One gateway call from start to end: limits and budget, cache, targets with retries and
fallback, cost, and the span that records it.

The routes turn HTTP into a :class:`Call` and a result back into HTTP; everything between is
here. Non-streaming calls return a :class:`Completed`; streaming calls return an opened
:class:`StreamingCall` whose chunks the route forwards, and which settles the budget and
records the span when it ends.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.auth.ratelimit import RateLimiter
from brokle_server.errors import BrokleError, Unavailable
from brokle_server.gateway import cache as cache_keys
from brokle_server.gateway.admission import Admission
from brokle_server.gateway.budgets import Budgets
from brokle_server.gateway.cache import ResponseCache
from brokle_server.gateway.config import GatewaySettings
from brokle_server.gateway.pricing import Cost
from brokle_server.gateway.project_config import ProjectConfigCache, ProjectGateway
from brokle_server.gateway.providers import ChatStream, Provider, build_provider
from brokle_server.gateway.routing import RoutePlan, Router, Target, backoff_delay
from brokle_server.gateway.shaping import (
    assemble,
    output_of,
)
from brokle_server.gateway.tracing import CallRecord, SpanRecorder, text_of
from brokle_server.gateway.types import ChatResult, EmbeddingResult, ProviderConfig, Usage

log = structlog.get_logger("brokle.gateway")
Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
_CLIENT_ERRORS = frozenset({400, 404, 413, 422})


@dataclass(slots=True)
class Call:
    """One inbound request, decoded."""

    principal: KeyPrincipal
    endpoint: str  # chat | completions | embeddings
    body: dict[str, Any]
    stream: bool
    record: CallRecord
    cache_mode: str = ""  # "" | no-cache | no-store
    cache_ttl_s: int | None = None


@dataclass(slots=True)
class Completed:
    response: dict[str, Any]
    usage: Usage
    provider: str
    model: str
    cache: str
    cost: Cost | None


@dataclass(slots=True)
class _Attempt:
    target: Target
    config: ProviderConfig
    provider: Provider


@dataclass(slots=True)
class StreamingCall:
    """An opened upstream stream plus what is needed to finish the call when it ends."""

    stream: ChatStream | None
    cached: dict[str, Any] | None
    provider: str
    finish: Callable[[Usage | None, str, BrokleError | None], Awaitable[None]]
    cache: str
    chunks: list[dict[str, Any]] = field(default_factory=list)


class GatewayService:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        configs: ProjectConfigCache,
        client: httpx.AsyncClient,
        limiter: RateLimiter,
        budgets: Budgets,
        cache: ResponseCache,
        recorder: SpanRecorder,
        publish: Publish,
        router: Router | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.configs = configs
        self.client = client
        self.limiter = limiter
        self.budgets = budgets
        self.admission = Admission(settings, limiter, budgets)
        self.cache = cache
        self.recorder = recorder
        self.router = router or Router(
            breaker_failures=settings.breaker_failures,
            breaker_cooldown_s=settings.breaker_cooldown_s,
        )
        self._publish = publish
        self._rng = rng or random.Random()  # noqa: S311  (retry jitter, not secrets)
        self._backoff_max = settings.backoff_max_ms / 1000
        self._providers: dict[tuple[str, ProviderConfig], Provider] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- shared steps ----------------------------------------------------------------------

    def _provider(self, project_id: str, config: ProviderConfig) -> Provider:
        key = (project_id, config)
        provider = self._providers.get(key)
        if provider is None:
            if len(self._providers) > 10_000:
                self._providers.clear()
            provider = self._providers[key] = build_provider(config, self.client)
        return provider

    def _attempts(self, cfg: ProjectGateway, plan: RoutePlan) -> list[_Attempt]:
        pricer = cfg.pricer

        def price_of(target: Target) -> float:
            config = cfg.providers.get(target.provider)
            price = pricer.price(config.kind, target.model) if config else None
            return (price.input + price.output) if price else float("inf")

        attempts = []
        for target in self.router.order(cfg.project_id, plan, price_of):
            config = cfg.providers.get(target.provider)
            if config is None:
                continue  # a route naming a deleted provider: skip it
            attempts.append(_Attempt(target, config, self._provider(cfg.project_id, config)))
        if not attempts:
            raise Unavailable(
                f"No usable provider for '{plan.alias}': its targets name missing providers",
                code="no_provider",
            )
        return attempts

    async def _run(
        self,
        call: Call,
        plan: RoutePlan,
        attempts: list[_Attempt],
        invoke: Callable[[_Attempt], Awaitable[Any]],
    ) -> tuple[_Attempt, Any]:
        """Try targets in order, retrying retryable failures with backoff on each."""
        project = str(call.principal.project_id)
        last: BrokleError | None = None
        tries = 0
        for attempt in attempts:
            if call.endpoint == "chat":
                # Chat parameters are checked up front; the embeddings and completions methods
                # check their own bodies (and name a missing endpoint as such).
                attempt.provider.validate(call.body)
            for retry in range(plan.retries + 1):
                if tries >= self.settings.max_attempts:
                    break
                tries += 1
                call.record.attempts = tries
                self.router.started(project, attempt.target)
                started = time.perf_counter()
                try:
                    result = await invoke(attempt)
                except BrokleError as exc:
                    last = exc
                    status = getattr(exc, "status", 0)
                    if status in _CLIENT_ERRORS:
                        # The request itself is wrong: another target won't help, and the
                        # target is healthy, so its breaker is left alone.
                        raise
                    self.router.failed(project, attempt.target)
                    if not getattr(exc, "retryable", False):
                        break  # e.g. bad credentials: move on to the next target
                    retry_after = getattr(exc, "retry_after", None)
                    if retry_after is not None and retry_after > self._backoff_max:
                        break  # the target asks for longer than we wait: fall back
                    if retry < plan.retries:
                        await asyncio.sleep(
                            backoff_delay(
                                retry + 1,
                                initial=self.settings.backoff_initial_ms / 1000,
                                maximum=self._backoff_max,
                                retry_after=retry_after,
                                rng=self._rng,
                            )
                        )
                    continue
                self.router.succeeded(project, attempt.target, time.perf_counter() - started)
                return attempt, result
        if last is not None:
            raise last
        raise Unavailable(f"Every target of '{plan.alias}' is unavailable", code="no_provider")

    def _cost(self, cfg: ProjectGateway, kind: str, model: str, usage: Usage) -> Cost:
        return cfg.pricer.cost(kind, model, usage)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _announce(self, call: Call, plan: RoutePlan, provider: str, model: str) -> None:
        event = {
            "type": "routing.decision",
            "project_id": str(call.principal.project_id),
            "trace_id": call.record.trace_id,
            "alias": plan.alias,
            "strategy": plan.strategy.value,
            "provider": provider,
            "model": model,
            "attempts": call.record.attempts,
            "cache": call.record.cache,
        }
        self._spawn(_quiet(self._publish(f"project:{call.principal.project_id}", event)))

    def _fill_record(
        self,
        call: Call,
        cfg: ProjectGateway,
        attempt: _Attempt | None,
        model: str,
        usage: Usage | None,
        cost: Cost | None,
        error: BrokleError | None,
    ) -> None:
        record = call.record
        record.end_ns = time.time_ns()
        if attempt is not None:
            record.provider = attempt.config.name
            record.provider_kind = attempt.config.kind
        record.model = model
        if usage is not None:
            record.input_tokens = usage.input_tokens
            record.output_tokens = usage.output_tokens
            record.cached_tokens = usage.cached_tokens
            record.cache_write_tokens = usage.cache_write_tokens
            record.reasoning_tokens = usage.reasoning_tokens
        if cost is not None:
            record.cost_usd, record.input_cost_usd = cost.total, cost.input
            record.output_cost_usd, record.price_version = cost.output, cost.version
        if error is not None:
            record.status_code = "error"
            record.status_message = error.message
        self.recorder.record(record)

    # -- non-streaming ---------------------------------------------------------------------

    async def complete(self, call: Call) -> Completed:
        cfg = await self.configs.get(call.principal.project_id)
        plan = cfg.resolve(str(call.body.get("model", "")), default_timeout_s=self._timeout())
        call.record.route = plan.alias
        call.record.input_text = text_of(
            call.body.get("messages") or call.body.get("input") or call.body.get("prompt") or ""
        )
        ttl = self._cache_ttl(call, plan)
        key = cache_keys.request_key(cfg.project_id, call.endpoint, plan.alias, call.body)
        cached, semantic = await self._cached(call, cfg, plan, key, ttl)
        if cached is not None:
            usage = Usage.from_openai(cached.get("usage"))
            self._fill_record(call, cfg, None, str(cached.get("model", "")), usage, None, None)
            return Completed(cached, usage, "cache", str(cached.get("model", "")), "hit", None)
        call.record.cache = "miss" if ttl else "bypass"
        reservation = await self.admission.admit(call.principal, call.body, cfg, plan)
        attempt: _Attempt | None = None
        try:
            attempt, result = await self._run(
                call, plan, self._attempts(cfg, plan), lambda a: self._invoke(call, a, plan)
            )
        except BrokleError as exc:
            await self.budgets.settle(reservation, 0.0)
            self._fill_record(call, cfg, attempt, "", None, None, exc)
            raise
        usage, model = result.usage, result.model
        cost = self._cost(cfg, attempt.config.kind, model, usage)
        await self.budgets.settle(reservation, cost.total)
        await self.admission.charge_output(call.principal, cfg, usage)
        response = result.response
        call.record.output_text = text_of(output_of(call.endpoint, response))
        self._fill_record(call, cfg, attempt, model, usage, cost, None)
        if ttl:
            await self._remember(key, semantic, response, ttl)
        self._announce(call, plan, attempt.config.name, model)
        return Completed(response, usage, attempt.config.name, model, call.record.cache, cost)

    async def _invoke(
        self, call: Call, attempt: _Attempt, plan: RoutePlan
    ) -> ChatResult | EmbeddingResult:
        provider, model = attempt.provider, attempt.target.model
        if call.endpoint == "embeddings":
            return await provider.embeddings(call.body, model, timeout=plan.timeout_s)
        if call.endpoint == "completions":
            return await provider.completion(call.body, model, timeout=plan.timeout_s)
        return await provider.chat(call.body, model, timeout=plan.timeout_s)

    async def _semantic_key(
        self, call: Call, cfg: ProjectGateway, plan: RoutePlan
    ) -> tuple[str, list[float]] | None:
        """(conversation prefix, embedding of the last user turn) when the route has a
        semantic cache; None when it has none or the embedding cannot be had."""
        if not (plan.semantic_threshold and plan.semantic_embeddings and call.endpoint == "chat"):
            return None
        prefix = cache_keys.conversation_prefix_key(cfg.project_id, plan.alias, call.body)
        if prefix is None:
            return None
        try:
            embed_plan = cfg.resolve(plan.semantic_embeddings, default_timeout_s=self._timeout())
            target = embed_plan.targets[0]
            provider = self._provider(cfg.project_id, cfg.providers[target.provider])
            result = await provider.embeddings(
                {"model": target.model, "input": cache_keys.last_user_text(call.body)},
                target.model,
                timeout=embed_plan.timeout_s,
            )
            vector = [float(x) for x in result.response["data"][0]["embedding"]]
        except (BrokleError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("semantic cache skipped", route=plan.alias, error=str(exc))
            return None
        return prefix, vector

    async def _cached(
        self, call: Call, cfg: ProjectGateway, plan: RoutePlan, key: str, ttl: int | None
    ) -> tuple[dict[str, Any] | None, tuple[str, list[float]] | None]:
        """An exact hit, else a semantic one; also the semantic key to store a miss under."""
        if not ttl or call.cache_mode != "":
            return None, None
        hit = await self.cache.get(key)
        if hit is not None:
            call.record.cache = "hit"
            return hit, None
        semantic = await self._semantic_key(call, cfg, plan)
        if semantic is not None and plan.semantic_threshold:
            hit = await self.cache.similar(semantic[0], semantic[1], plan.semantic_threshold)
            if hit is not None:
                call.record.cache = "hit"
                call.record.extra["brokle.gateway.cache_kind"] = "semantic"
                return hit, semantic
        return None, semantic

    async def _remember(
        self,
        key: str,
        semantic: tuple[str, list[float]] | None,
        response: dict[str, Any],
        ttl: int,
    ) -> None:
        await self.cache.set(key, response, ttl)
        if semantic is not None:
            await self.cache.add_vector(semantic[0], semantic[1], response, ttl)

    def _timeout(self) -> float:
        return self.settings.default_timeout_ms / 1000

    def _cache_ttl(self, call: Call, plan: RoutePlan) -> int | None:
        if call.cache_mode == "no-store" or call.body.get("n", 1) not in (1, None):
            return None
        return call.cache_ttl_s if call.cache_ttl_s is not None else plan.cache_ttl_s

    # -- streaming -------------------------------------------------------------------------

    async def open_stream(self, call: Call) -> StreamingCall:
        cfg = await self.configs.get(call.principal.project_id)
        plan = cfg.resolve(str(call.body.get("model", "")), default_timeout_s=self._timeout())
        call.record.route = plan.alias
        call.record.streamed = True
        call.record.input_text = text_of(call.body.get("messages") or call.body.get("prompt") or "")
        ttl = self._cache_ttl(call, plan)
        key = cache_keys.request_key(cfg.project_id, call.endpoint, plan.alias, call.body)
        cached, semantic = await self._cached(call, cfg, plan, key, ttl)
        if cached is not None:
            hit = cached
            usage = Usage.from_openai(hit.get("usage"))

            async def finish_cached(
                _u: Usage | None, output: str, error: BrokleError | None
            ) -> None:
                call.record.output_text = output
                self._fill_record(call, cfg, None, str(hit.get("model", "")), usage, None, error)

            return StreamingCall(None, hit, "cache", finish_cached, "hit")
        call.record.cache = "miss" if ttl else "bypass"
        reservation = await self.admission.admit(call.principal, call.body, cfg, plan)
        started_ns = time.perf_counter_ns()
        attempt: _Attempt | None = None

        async def open_one(a: _Attempt) -> ChatStream:
            model = a.target.model
            if call.endpoint == "completions":
                stream = a.provider.stream_completion(call.body, model, timeout=plan.timeout_s)
            else:
                stream = a.provider.stream_chat(call.body, model, timeout=plan.timeout_s)
            try:
                await stream.open()
            except BaseException:
                await stream.aclose()
                raise
            return stream

        try:
            attempt, stream = await self._run(call, plan, self._attempts(cfg, plan), open_one)
        except BrokleError as exc:
            await self.budgets.settle(reservation, 0.0)
            self._fill_record(call, cfg, attempt, "", None, None, exc)
            raise
        call.record.ttft_ms = (time.perf_counter_ns() - started_ns) / 1e6
        chosen = attempt

        async def finish(usage: Usage | None, output: str, error: BrokleError | None) -> None:
            model = stream.model or chosen.target.model
            used = usage or Usage()
            cost = self._cost(cfg, chosen.config.kind, model, used)
            await self.budgets.settle(reservation, cost.total)
            await self.admission.charge_output(call.principal, cfg, used)
            call.record.output_text = output
            self._fill_record(call, cfg, chosen, model, used, cost, error)
            if ttl and error is None and stream.completed:
                await self._remember(key, semantic, assemble(streaming.chunks, used, model), ttl)
            self._announce(call, plan, chosen.config.name, model)

        streaming = StreamingCall(stream, None, chosen.config.name, finish, call.record.cache)
        return streaming


async def _quiet(coro: Awaitable[None]) -> None:
    try:
        await coro
    except Exception as exc:  # live events are best effort
        log.debug("gateway event not published", error=str(exc))
