"""Provider kinds → classes, and :func:`build_provider`, the one way to make a provider.

Kinds: ``openai``, ``azure``, ``anthropic``, ``gemini`` and every id in
:data:`~brokle_server.gateway.providers.compat.COMPAT_SERVICES` (``groq``, ``together``,
``ollama``, ...). :data:`CAPABILITIES` describes each kind for ``/v1/models`` and for
validating provider credentials when they are created.
"""

from __future__ import annotations

import httpx

from brokle_server.errors import ConfigurationError, InvalidInput
from brokle_server.gateway.providers.anthropic import CAPABILITIES as ANTHROPIC_CAPABILITIES
from brokle_server.gateway.providers.anthropic import AnthropicProvider
from brokle_server.gateway.providers.azure import AZURE, AzureOpenAIProvider
from brokle_server.gateway.providers.base import Provider
from brokle_server.gateway.providers.compat import COMPAT_BY_ID, COMPAT_SERVICES, OPENAI
from brokle_server.gateway.providers.gemini import CAPABILITIES as GEMINI_CAPABILITIES
from brokle_server.gateway.providers.gemini import GeminiProvider
from brokle_server.gateway.providers.openai import OpenAIProvider
from brokle_server.gateway.types import Capabilities, ProviderConfig

CAPABILITIES: dict[str, Capabilities] = {
    "openai": OPENAI.capabilities(),
    "azure": AZURE.capabilities(),
    "anthropic": ANTHROPIC_CAPABILITIES,
    "gemini": GEMINI_CAPABILITIES,
    **{spec.id: spec.capabilities() for spec in COMPAT_SERVICES},
}
KINDS: tuple[str, ...] = tuple(CAPABILITIES)


def _unknown_kind(kind: str) -> InvalidInput:
    return InvalidInput(
        f"Unknown provider kind '{kind}'; known kinds: {', '.join(KINDS)}",
        code="unknown_provider_kind",
    )


def capabilities(kind: str) -> Capabilities:
    """What ``kind`` supports; InvalidInput for an unknown kind."""
    found = CAPABILITIES.get(kind)
    if found is None:
        raise _unknown_kind(kind)
    return found


def build_provider(config: ProviderConfig, client: httpx.AsyncClient) -> Provider:
    """The provider for ``config.kind`` using the shared ``client`` (never closed here).

    Raises :class:`InvalidInput` for an unknown kind and
    :class:`~brokle_server.errors.ConfigurationError` for a credential that cannot work
    (e.g. Azure without ``base_url``, a compat kind with no default URL and none given).
    """
    kind = config.kind
    if kind == "anthropic":
        return AnthropicProvider(config, client)
    if kind == "gemini":
        return GeminiProvider(config, client)
    if kind == "azure":
        return AzureOpenAIProvider(config, client)
    if kind == "openai":
        return OpenAIProvider(config, client, OPENAI)
    spec = COMPAT_BY_ID.get(kind)
    if spec is None:
        raise _unknown_kind(kind)
    if spec.base_url is None and not config.base_url:
        raise ConfigurationError(f"Provider '{config.name}' ({kind}) needs a base_url")
    return OpenAIProvider(config, client, spec)
