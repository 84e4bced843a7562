"""LLM fields promoted out of span attributes into real columns.

Sources, first match wins (OTel GenAI semantic conventions, the ``brokle`` SDK 0.4, and the
OpenInference / OpenLLMetry spellings other instrumentations emit):

=====================  ===================================================================
column                 attribute keys
=====================  ===================================================================
provider               gen_ai.provider.name, gen_ai.system, llm.provider, llm.system
model                  gen_ai.response.model, gen_ai.request.model, llm.model_name
operation              gen_ai.operation.name
input_tokens           gen_ai.usage.input_tokens, gen_ai.usage.prompt_tokens,
                       llm.token_count.prompt, llm.usage.prompt_tokens
output_tokens          gen_ai.usage.output_tokens, gen_ai.usage.completion_tokens,
                       llm.token_count.completion, llm.usage.completion_tokens
total_tokens           brokle.usage.total_tokens, gen_ai.usage.total_tokens,
                       llm.token_count.total, llm.usage.total_tokens, else input + output
cached_tokens          gen_ai.usage.cache_read.input_tokens, gen_ai.usage.input_tokens.cache_read,
                       gen_ai.usage.cache_read_input_tokens, gen_ai.usage.input_tokens.cached
cache_write_tokens     gen_ai.usage.cache_creation.input_tokens,
                       gen_ai.usage.input_tokens.cache_creation,
                       gen_ai.usage.cache_creation_input_tokens,
                       gen_ai.usage.input_tokens.cache_write
reasoning_tokens       gen_ai.usage.reasoning_tokens, gen_ai.usage.reasoning.output_tokens,
                       gen_ai.usage.output_tokens.reasoning
cost_usd               brokle.cost.total, gen_ai.usage.cost, llm.cost.total, else input + output
input_cost_usd         brokle.cost.input, llm.cost.prompt
output_cost_usd        brokle.cost.output, llm.cost.completion
price_version          brokle.cost.price_version
ttft_ms                gen_ai.response.time_to_first_token (ms, the SDK's),
                       gen_ai.server.time_to_first_token (seconds)
input  (removed)       gen_ai.input.messages, input.value, gen_ai.prompt, indexed
                       gen_ai.prompt.N.{role,content}, or a ``gen_ai.content.prompt`` event
output (removed)       gen_ai.output.messages, output.value, gen_ai.completion, indexed
                       gen_ai.completion.N.{role,content}, or a ``gen_ai.content.completion``
                       event
=====================  ===================================================================

Only the text that was promoted leaves the attribute map; everything else stays.
"""

from __future__ import annotations

from typing import Final

import orjson

from brokle_server.ingest.anyvalue import IO_KEYS
from brokle_server.ingest.common import to_float, to_int

TRUNCATED_COUNT_KEY: Final = "brokle.truncated_attributes_count"
_MAX_TOKENS: Final = 10**18
_PROVIDER: Final = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
_MODEL: Final = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
_IN_TOK: Final = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
_OUT_TOK: Final = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
_TOTAL_TOK: Final = (
    "brokle.usage.total_tokens",
    "gen_ai.usage.total_tokens",
    "llm.token_count.total",
    "llm.usage.total_tokens",
)
_CACHED_TOK: Final = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.input_tokens.cache_read",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.input_tokens.cached",
)
_CACHE_WRITE_TOK: Final = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.input_tokens.cache_creation",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.input_tokens.cache_write",
)
_REASONING_TOK: Final = (
    "gen_ai.usage.reasoning_tokens",
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.output_tokens.reasoning",
)
_COST: Final = ("brokle.cost.total", "gen_ai.usage.cost", "llm.cost.total")
_IN_COST: Final = ("brokle.cost.input", "llm.cost.prompt")
_OUT_COST: Final = ("brokle.cost.output", "llm.cost.completion")
_INPUT: Final = ("gen_ai.input.messages", "input.value", "gen_ai.prompt")
_OUTPUT: Final = ("gen_ai.output.messages", "output.value", "gen_ai.completion")

# Every key read above: spans carrying none of them skip promotion entirely.
LLM_KEYS: Final = frozenset(
    (
        *_PROVIDER,
        *_MODEL,
        "gen_ai.operation.name",
        *_IN_TOK,
        *_OUT_TOK,
        *_TOTAL_TOK,
        *_CACHED_TOK,
        *_CACHE_WRITE_TOK,
        *_REASONING_TOK,
        *_COST,
        *_IN_COST,
        *_OUT_COST,
        "brokle.cost.price_version",
        "gen_ai.response.time_to_first_token",
        "gen_ai.server.time_to_first_token",
        *_INPUT,
        *_OUTPUT,
        "gen_ai.prompt.0.content",
        "gen_ai.completion.0.content",
    )
)

_RARE_KEYS: Final = frozenset(
    (
        *_CACHED_TOK,
        *_CACHE_WRITE_TOK,
        *_REASONING_TOK,
        *_COST,
        *_IN_COST,
        *_OUT_COST,
        "brokle.cost.price_version",
        "gen_ai.response.time_to_first_token",
        "gen_ai.server.time_to_first_token",
    )
)

# (provider, model, operation, in, out, total, cached, cache_write, reasoning,
#  cost, in_cost, out_cost, price_version, ttft_ms, input, output)
LLMFields = tuple[
    str, str, str, int, int, int, int, int, int, float, float, float, str, float | None, str, str
]
NO_LLM_FIELDS: Final[LLMFields] = ("", "", "", 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, "", None, "", "")


def _first(attrs: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = attrs.get(key)
        if value:
            return value
    return ""


def _first_int(attrs: dict[str, str], keys: tuple[str, ...]) -> int:
    for key in keys:
        value = attrs.get(key)
        if value:
            try:  # the usual case: an int attribute flattened to decimal text
                number = int(value)
            except ValueError:
                return to_int(value)
            # Beyond 1e18 (as to_int): the UInt64 column cannot take it and the batch would fail.
            return number if 0 < number <= _MAX_TOKENS else 0
    return 0


def _first_cost(attrs: dict[str, str], keys: tuple[str, ...]) -> float:
    for key in keys:
        value = attrs.get(key)
        if value:
            number = to_float(value)
            if number is not None and number == number and number >= 0:
                return number
    return 0.0


def _pop_text(attrs: dict[str, str], keys: tuple[str, ...], cap: int) -> str:
    for key in keys:
        value = attrs.get(key)
        if value:
            del attrs[key]
            return value[:cap]
    return ""


def _pop_indexed(attrs: dict[str, str], prefix: str, cap: int) -> str:
    """OpenLLMetry's ``gen_ai.prompt.0.role`` / ``.content`` pairs as a JSON message list."""
    messages: list[dict[str, str]] = []
    for i in range(1000):
        role_key = f"{prefix}{i}.role"
        content_key = f"{prefix}{i}.content"
        if role_key not in attrs and content_key not in attrs:
            break
        messages.append({"role": attrs.pop(role_key, ""), "content": attrs.pop(content_key, "")})
    return orjson.dumps(messages).decode()[:cap] if messages else ""


def _ttft_ms(attrs: dict[str, str]) -> float | None:
    value = attrs.get("gen_ai.response.time_to_first_token")
    scale = 1.0
    if not value:
        value = attrs.get("gen_ai.server.time_to_first_token")
        scale = 1000.0
    if not value:
        return None
    number = to_float(value)
    if number is None or number != number or number < 0 or number > 1e9:
        return None
    return number * scale


def extract_llm_fields(attrs: dict[str, str], io_cap: int, value_cap: int) -> LLMFields:
    """Read the promoted LLM columns; the chosen prompt/completion keys leave ``attrs``.

    Prompt/completion keys that were not chosen stay, cut to ``value_cap`` like any value.
    """
    present = LLM_KEYS.intersection(attrs)
    if not present:
        return NO_LLM_FIELDS
    input_tokens = _first_int(attrs, _IN_TOK)
    output_tokens = _first_int(attrs, _OUT_TOK)
    total_tokens = _first_int(attrs, _TOTAL_TOK) or input_tokens + output_tokens
    # Cache, reasoning and cost attributes are rare: skip their lookups in one set test.
    rare = not _RARE_KEYS.isdisjoint(present)
    cached_tokens = _first_int(attrs, _CACHED_TOK) if rare else 0
    cache_write_tokens = _first_int(attrs, _CACHE_WRITE_TOK) if rare else 0
    reasoning_tokens = _first_int(attrs, _REASONING_TOK) if rare else 0
    input_cost = _first_cost(attrs, _IN_COST) if rare else 0.0
    output_cost = _first_cost(attrs, _OUT_COST) if rare else 0.0
    cost = (_first_cost(attrs, _COST) if rare else 0.0) or input_cost + output_cost
    text_in = _pop_text(attrs, _INPUT, io_cap)
    if not text_in and "gen_ai.prompt.0.content" in attrs:
        text_in = _pop_indexed(attrs, "gen_ai.prompt.", io_cap)
    text_out = _pop_text(attrs, _OUTPUT, io_cap)
    if not text_out and "gen_ai.completion.0.content" in attrs:
        text_out = _pop_indexed(attrs, "gen_ai.completion.", io_cap)
    for key in IO_KEYS.intersection(present):
        value = attrs.get(key)
        if value is not None and len(value) > value_cap:
            attrs[key] = value[:value_cap]
            counted = attrs.get(TRUNCATED_COUNT_KEY, "0")
            attrs[TRUNCATED_COUNT_KEY] = str(int(counted) + 1 if counted.isdigit() else 1)
    return (
        _first(attrs, _PROVIDER),
        _first(attrs, _MODEL),
        attrs.get("gen_ai.operation.name", ""),
        input_tokens,
        output_tokens,
        total_tokens,
        cached_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cost,
        input_cost,
        output_cost,
        attrs.get("brokle.cost.price_version", "") if rare else "",
        _ttft_ms(attrs) if rare else None,
        text_in,
        text_out,
    )


_OPENINFERENCE_KINDS: Final = {
    "LLM": "generation",
    "CHAIN": "chain",
    "TOOL": "tool",
    "AGENT": "agent",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embedding",
    "RERANKER": "rerank",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluator",
}
_OPERATION_TYPES: Final = {
    "chat": "generation",
    "text_completion": "generation",
    "completion": "generation",
    "generate_content": "generation",
    "embeddings": "embedding",
    "embedding": "embedding",
    "execute_tool": "tool",
    "invoke_agent": "agent",
    "create_agent": "agent",
}


def infer_span_type(attrs: dict[str, str], operation: str, provider: str, model: str) -> str:
    """``brokle.span.type`` if valid, else a type inferred from conventions, else ``span``."""
    declared = attrs.get("brokle.span.type") or attrs.get("brokle.span_type")
    if declared:
        value = declared.strip().lower()
        if 0 < len(value) <= 32 and value.replace("_", "").isalpha():
            return value
    kind = attrs.get("openinference.span.kind")
    if kind:
        mapped = _OPENINFERENCE_KINDS.get(kind.upper())
        if mapped:
            return mapped
    if operation:
        mapped = _OPERATION_TYPES.get(operation)
        if mapped:
            return mapped
    if model or provider:
        return "generation"
    return "span"
