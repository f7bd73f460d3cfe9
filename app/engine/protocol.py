"""The interface every chat backend offers (embedded engine, OpenAI-compatible server, fake),
so the UI and the command line never care which one they hold."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from app.engine.backend import BackendInfo
from app.engine.events import Event
from app.engine.params import GenerationParams


@runtime_checkable
class ChatEngine(Protocol):
    @property
    def n_ctx(self) -> int: ...

    def backend_info(self) -> BackendInfo: ...

    def stream(self, messages: Sequence[Mapping[str, Any]], *, system: str | None = None,
               params: Mapping[str, Any] | GenerationParams | None = None,
               think: bool | None = None, cancel: threading.Event | None = None,
               owner: str | None = None) -> Iterator[Event]: ...
    # `owner`: the conversation the reply is for; an engine that saves its cache on disk
    # marks the saved state with it (Engine.forget removes it with the conversation).

    def close(self) -> None: ...
