"""Azure OpenAI: the OpenAI wire format on per-deployment URLs with an ``api-key`` header.

The target model name is the deployment name:
``{base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}``.
``base_url`` is the resource endpoint (``https://<resource>.openai.azure.com``) and is
required; ``options["api_version"]`` overrides the default API version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from brokle_server.errors import ConfigurationError
from brokle_server.gateway.providers.compat import HEADER, CompatSpec
from brokle_server.gateway.providers.openai import OpenAIProvider
from brokle_server.gateway.types import JSONDict, ProviderConfig, UnsupportedEndpoint

DEFAULT_API_VERSION = "2024-10-21"

AZURE = CompatSpec(
    id="azure",
    label="Azure OpenAI",
    base_url=None,
    auth=HEADER,
    auth_header="api-key",
    embeddings=True,
    completions=True,
)


class AzureOpenAIProvider(OpenAIProvider):
    kind = "azure"

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        if not config.base_url:
            raise ConfigurationError(
                f"Azure provider '{config.name}' needs base_url (https://<resource>.openai.azure.com)"
            )
        super().__init__(config, client, AZURE)
        self.api_version = config.options.get("api_version") or DEFAULT_API_VERSION

    def url(self, path: str, model: str) -> str:
        deployment = quote(model, safe="")
        return (
            f"{self.base_url}/openai/deployments/{deployment}/{path}"
            f"?api-version={quote(self.api_version, safe='')}"
        )

    def payload(self, body: Mapping[str, Any], model: str, *, stream: bool) -> JSONDict:
        out = super().payload(body, model, stream=stream)
        out.pop("model", None)  # the deployment in the URL chooses the model
        return out

    async def list_models(self, *, timeout: float) -> list[str]:  # noqa: ASYNC109
        raise UnsupportedEndpoint("listing deployments", self.name)
