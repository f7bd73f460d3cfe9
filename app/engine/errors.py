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
    """Even the last message alone does not fit the context window."""

    title = "The message does not fit the model's context"


class EngineBusyError(EngineError):
    """A second generation was started while one is running on the same model."""

    title = "The model is busy"
