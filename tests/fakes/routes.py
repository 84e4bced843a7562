"""The fake upstream's HTTP routes: one handler per provider endpoint, each rendering the
scripted reply in that provider's wire format through :meth:`FakeUpstream._serve`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes import anthropic_wire, gemini_wire, openai_wire

if TYPE_CHECKING:
    from tests.fakes.upstreams import FakeUpstream


def _body_model(request: Request, body: Any) -> str:
    return str((body or {}).get("model") or "")


def _deployment(request: Request, body: Any) -> str:
    return str(request.path_params["deployment"])


def _gemini_target(request: Request) -> tuple[str, str]:
    model, _, method = str(request.path_params["target"]).rpartition(":")
    return model, method


def build_routes(fake: FakeUpstream) -> list[Route]:
    def chat(body: dict[str, Any], model: str) -> Any:
        reply = fake._resolved(model, openai_wire.last_user_text(body), int(body.get("n") or 1))
        if body.get("stream"):
            return openai_wire.chat_events(reply, model, body)
        return openai_wire.chat_body(reply, model, body)

    def completions(body: dict[str, Any], model: str) -> Any:
        reply = fake._resolved(model, openai_wire.last_user_text(body))
        if body.get("stream"):
            return openai_wire.completion_events(reply, model, body)
        return openai_wire.completion_body(reply, model)

    def embeddings(body: dict[str, Any], model: str) -> Any:
        prompt = fake._resolved(model, "").usage.prompt
        return openai_wire.embeddings_body(body, model, prompt)

    def messages(body: dict[str, Any], model: str) -> Any:
        reply = fake._resolved(model, anthropic_wire.last_user_text(body))
        if body.get("stream"):
            return anthropic_wire.message_events(reply, model)
        return anthropic_wire.message_body(reply, model)

    async def openai_chat(request: Request) -> Response:
        return await fake._serve(request, "openai.chat", "openai", _body_model, chat)

    async def openai_completions(request: Request) -> Response:
        return await fake._serve(request, "openai.completions", "openai", _body_model, completions)

    async def openai_embeddings(request: Request) -> Response:
        return await fake._serve(request, "openai.embeddings", "openai", _body_model, embeddings)

    async def models(request: Request) -> Response:
        if "anthropic-version" in request.headers or "x-api-key" in request.headers:
            return await fake._serve(
                request,
                "anthropic.models",
                "anthropic",
                _body_model,
                lambda body, model: anthropic_wire.models_body(fake.models),
            )
        return await fake._serve(
            request,
            "openai.models",
            "openai",
            _body_model,
            lambda body, model: openai_wire.models_body(fake.models),
        )

    async def azure_chat(request: Request) -> Response:
        return await fake._serve(request, "azure.chat", "azure", _deployment, chat)

    async def azure_completions(request: Request) -> Response:
        return await fake._serve(request, "azure.completions", "azure", _deployment, completions)

    async def azure_embeddings(request: Request) -> Response:
        return await fake._serve(request, "azure.embeddings", "azure", _deployment, embeddings)

    async def anthropic_messages(request: Request) -> Response:
        return await fake._serve(request, "anthropic.messages", "anthropic", _body_model, messages)

    async def gemini(request: Request) -> Response:
        model, method = _gemini_target(request)

        def respond(body: dict[str, Any], _: str) -> Any:
            if method == "batchEmbedContents":
                return gemini_wire.embed_body(body)
            n = int((body.get("generationConfig") or {}).get("candidateCount") or 1)
            reply = fake._resolved(model, gemini_wire.last_user_text(body), n)
            if method == "streamGenerateContent":
                return gemini_wire.stream_events(reply, model)
            return gemini_wire.generate_body(reply, model)

        route = {
            "generateContent": "gemini.generate",
            "streamGenerateContent": "gemini.stream",
            "batchEmbedContents": "gemini.embed",
        }.get(method, f"gemini.{method}")
        return await fake._serve(request, route, "gemini", lambda r, b: model, respond)

    async def gemini_models(request: Request) -> Response:
        return await fake._serve(
            request,
            "gemini.models",
            "gemini",
            lambda r, b: "",
            lambda body, model: gemini_wire.models_body(fake.models),
        )

    return [
        Route("/v1/chat/completions", openai_chat, methods=["POST"]),
        Route("/v1/completions", openai_completions, methods=["POST"]),
        Route("/v1/embeddings", openai_embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/messages", anthropic_messages, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", azure_chat, methods=["POST"]),
        Route("/openai/deployments/{deployment}/completions", azure_completions, methods=["POST"]),
        Route("/openai/deployments/{deployment}/embeddings", azure_embeddings, methods=["POST"]),
        Route("/v1beta/models", gemini_models, methods=["GET"]),
        Route("/v1beta/models/{target:path}", gemini, methods=["POST"]),
    ]
