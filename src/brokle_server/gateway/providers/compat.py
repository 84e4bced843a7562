"""The data-driven registry of OpenAI-compatible services.

Each entry says where the service lives, how it authenticates and which parts of the OpenAI
API it lacks; :class:`~brokle_server.gateway.providers.openai.OpenAIProvider` does the rest.
Adding a service is adding a row. Flags are conservative: a feature is only marked
unsupported where the service documents that it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from brokle_server.gateway.types import Capabilities

BEARER = "bearer"
"""``Authorization: Bearer <api_key>``; a key is required."""
OPTIONAL_BEARER = "optional-bearer"
"""Local servers: no auth unless a key was configured, then Bearer."""
HEADER = "header"
"""The key goes in ``auth_header`` as is (e.g. ``api-key``)."""


@dataclass(frozen=True, slots=True)
class CompatSpec:
    """How to talk to one OpenAI-compatible service."""

    id: str
    label: str
    base_url: str | None
    auth: str = BEARER
    auth_header: str = "authorization"
    stream_options: bool = True
    """Whether ``stream_options.include_usage`` is accepted (else it is not sent upstream)."""
    embeddings: bool = False
    completions: bool = False
    logprobs: bool = True
    tools: bool = True
    response_format: bool = True
    max_n: int | None = None
    top_k: bool = False
    """Accepts the non-OpenAI ``top_k`` sampling parameter."""
    unsupported: frozenset[str] = frozenset()
    """Other OpenAI parameters the service rejects or ignores."""

    def capabilities(self) -> Capabilities:
        return Capabilities(
            kind=self.id,
            label=self.label,
            default_base_url=self.base_url,
            tools=self.tools,
            embeddings=self.embeddings,
            completions=self.completions,
            logprobs=self.logprobs,
            max_n=self.max_n,
            response_format=self.response_format,
            requires_api_key=self.auth != OPTIONAL_BEARER,
        )


OPENAI = CompatSpec(
    id="openai",
    label="OpenAI",
    base_url="https://api.openai.com/v1",
    embeddings=True,
    completions=True,
)

COMPAT_SERVICES: tuple[CompatSpec, ...] = (
    CompatSpec(
        id="groq",
        label="Groq",
        base_url="https://api.groq.com/openai/v1",
        logprobs=False,
        max_n=1,
        unsupported=frozenset({"logit_bias"}),
    ),
    CompatSpec(
        id="together",
        label="Together AI",
        base_url="https://api.together.xyz/v1",
        embeddings=True,
        completions=True,
        top_k=True,
    ),
    CompatSpec(
        id="fireworks",
        label="Fireworks AI",
        base_url="https://api.fireworks.ai/inference/v1",
        embeddings=True,
        completions=True,
        top_k=True,
    ),
    CompatSpec(
        id="deepseek",
        label="DeepSeek",
        base_url="https://api.deepseek.com/v1",
        max_n=1,
    ),
    CompatSpec(
        id="mistral",
        label="Mistral AI",
        base_url="https://api.mistral.ai/v1",
        embeddings=True,
        logprobs=False,
    ),
    CompatSpec(
        id="openrouter",
        label="OpenRouter",
        base_url="https://openrouter.ai/api/v1",
        completions=True,
        top_k=True,
    ),
    CompatSpec(id="xai", label="xAI", base_url="https://api.x.ai/v1", max_n=1),
    CompatSpec(
        id="perplexity",
        label="Perplexity",
        base_url="https://api.perplexity.ai",
        logprobs=False,
        max_n=1,
        tools=False,
        top_k=True,
    ),
    CompatSpec(
        id="ollama",
        label="Ollama",
        base_url="http://127.0.0.1:11434/v1",
        auth=OPTIONAL_BEARER,
        embeddings=True,
        completions=True,
        max_n=1,
    ),
    CompatSpec(
        id="vllm",
        label="vLLM",
        base_url="http://127.0.0.1:8000/v1",
        auth=OPTIONAL_BEARER,
        embeddings=True,
        completions=True,
        top_k=True,
    ),
    CompatSpec(
        id="lmstudio",
        label="LM Studio",
        base_url="http://127.0.0.1:1234/v1",
        auth=OPTIONAL_BEARER,
        embeddings=True,
        completions=True,
        logprobs=False,
        max_n=1,
    ),
    CompatSpec(
        id="deepinfra",
        label="DeepInfra",
        base_url="https://api.deepinfra.com/v1/openai",
        embeddings=True,
        completions=True,
        top_k=True,
    ),
    CompatSpec(
        id="cerebras",
        label="Cerebras",
        base_url="https://api.cerebras.ai/v1",
        max_n=1,
    ),
    CompatSpec(
        id="openai-compatible",
        label="Any OpenAI-compatible server (base_url required)",
        base_url=None,
        auth=OPTIONAL_BEARER,
        embeddings=True,
        completions=True,
    ),
)

COMPAT_BY_ID: dict[str, CompatSpec] = {spec.id: spec for spec in COMPAT_SERVICES}
