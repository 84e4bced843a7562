"""Admission of a gateway call: per-minute request and token limits, and the budget
reservation of its worst-case cost (settled by the caller when the call ends)."""

from __future__ import annotations

from typing import Any

from brokle_server.auth.principals import KeyPrincipal
from brokle_server.auth.ratelimit import Limit, RateLimiter
from brokle_server.errors import RateLimited
from brokle_server.gateway.budgets import Budgets, Reservation
from brokle_server.gateway.config import GatewaySettings
from brokle_server.gateway.project_config import ProjectGateway
from brokle_server.gateway.routing import RoutePlan
from brokle_server.gateway.shaping import estimate_input_tokens, max_output_tokens
from brokle_server.gateway.types import Usage


class Admission:
    def __init__(self, settings: GatewaySettings, limiter: RateLimiter, budgets: Budgets) -> None:
        self.settings = settings
        self.limiter = limiter
        self.budgets = budgets

    async def admit(
        self, principal: KeyPrincipal, body: dict[str, Any], cfg: ProjectGateway, plan: RoutePlan
    ) -> Reservation | None:
        """RPM/TPM limits, then a budget reservation for the worst-case cost."""
        key_id = str(principal.key_id)
        estimate_in = estimate_input_tokens(body)
        max_out = max_output_tokens(body, self.settings.default_max_output_tokens)
        for rule in cfg.limits_for(key_id):
            who = f"key:{key_id}" if rule.api_key_id else f"project:{cfg.project_id}"
            if rule.rpm:
                await self._hit(f"gw:rpm:{who}", Limit.per_minute(rule.rpm), 1, "requests")
            if rule.tpm:
                await self._hit(f"gw:tpm:{who}", Limit.per_minute(rule.tpm), estimate_in, "tokens")
        rules = cfg.budgets_for(key_id)
        if not rules:
            return None
        pricer = cfg.pricer
        worst = 0.0
        for target in plan.targets:
            kind = cfg.providers[target.provider].kind if target.provider in cfg.providers else ""
            price = pricer.price(kind, target.model)
            in_rate = price.input if price else self.settings.unknown_input_price_per_mtok
            out_rate = price.output if price else self.settings.unknown_output_price_per_mtok
            worst = max(worst, (estimate_in * in_rate + max_out * out_rate) / 1e6)
        return await self.budgets.reserve(cfg.project_id, rules, worst)

    async def _hit(self, key: str, limit: Limit, cost: int, unit: str) -> None:
        decision = await self.limiter.hit(key, limit, cost=max(1, cost))
        if not decision.allowed:
            raise RateLimited(
                f"Gateway {unit}-per-minute limit reached; retry after the time in Retry-After",
                code="rate_limited",
                retry_after=decision.retry_after,
                headers=decision.headers(),
            )

    async def charge_output(
        self, principal: KeyPrincipal, cfg: ProjectGateway, usage: Usage
    ) -> None:
        """TPM limits were charged the input estimate up front; charge the output now."""
        key_id = str(principal.key_id)
        for rule in cfg.limits_for(key_id):
            if rule.tpm and usage.output_tokens:
                who = f"key:{key_id}" if rule.api_key_id else f"project:{cfg.project_id}"
                # Into debt if need be: an answer larger than what is left still counts.
                await self.limiter.hit(
                    f"gw:tpm:{who}", Limit.per_minute(rule.tpm), usage.output_tokens, force=True
                )
