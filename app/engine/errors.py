"""Errors the engine raises: one line each, fit to show the user as they are."""

from __future__ import annotations

from converters.errors import AmicusError


class EngineError(AmicusError):
    """Base class: anything the engine reports instead of crashing."""

    title = "The engine failed"


class ModelLoadError(EngineError):
    """The model file is missing, truncated, not a GGUF, or llama.cpp refused it."""

    title = "The model could not be loaded"


class ContextOverflowError(EngineError):
    """Even the last message alone does not fit the context window. `needed`: the prompt's
    tokens; `n_ctx`: the context (so the app can say by how much, and suggest a size)."""

    title = "The message does not fit the model's context"

    def __init__(self, message: str, *, needed: int = 0, n_ctx: int = 0) -> None:
        super().__init__(message)
        self.needed = needed
        self.n_ctx = n_ctx


class EngineBusyError(EngineError):
    """A second generation was started while one is running on the same model."""

    title = "The model is busy"


class ReadingCancelled(EngineError):
    """Reading a prompt was stopped between two chunks at the user's request (what was read
    stays in the cache). For a command, an interruption: exit status 130."""

    title = "Reading cancelled"
    exit_code = 130
