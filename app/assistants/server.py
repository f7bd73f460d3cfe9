"""The assistants on an OpenAI-compatible server (`--endpoint`): which model name each is
asked for, and what the server offers (its `/v1/models`), for the app's model manager.

Each assistant is asked for under a configured name (the app's `[server_models]` table, the
command line's `--model`), by default its own name: `ollama create moral-audit -f Modelfile`
installs it so, and single-model servers (llama.cpp's) ignore the name anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.engine.openai_backend import OpenAIBackend
from app.engine.server_client import ServerClient


def server_model_name(assistant: str, server_models: Mapping[str, str] | None = None) -> str:
    """The model name the server is asked for when `assistant` answers."""
    return (server_models or {}).get(assistant) or assistant


@dataclass(frozen=True)
class ServedModel:
    id: str  # as the server names it
    assistants: tuple[str, ...]  # the assistants asked for it


@dataclass(frozen=True)
class ServerListing:
    url: str  # the server, normalised (…/v1)
    models: tuple[ServedModel, ...]  # in the server's order
    missing: dict[str, str]  # assistant -> the name it is asked for, which the server lacks


def list_server_models(server: str | ServerClient, assistants: Iterable[str],
                       server_models: Mapping[str, str] | None = None) -> ServerListing:
    """What the server offers (GET /v1/models) and which assistant uses which model.
    `server`: a URL, or a client carrying the key and certificate settings. Raises
    EndpointError (one line) when the server cannot be reached or answers badly."""
    backend = OpenAIBackend(server)
    offered = backend.list_models()
    wanted = {name: server_model_name(name, server_models) for name in assistants}
    models = tuple(ServedModel(model, tuple(a for a, m in wanted.items() if m == model))
                   for model in offered)
    missing = {a: m for a, m in wanted.items() if m not in offered}
    return ServerListing(backend.endpoint.url, models, missing)
