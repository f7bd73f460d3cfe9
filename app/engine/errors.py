"""Errors the engine raises: one line each, fit to show the user as they are."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: anything the engine reports instead of crashing."""


class ModelLoadError(EngineError):
    """The model file is missing, truncated, not a GGUF, or llama.cpp refused it."""


class ContextOverflowError(EngineError):
    """Even the last message alone does not fit the context window."""


class EngineBusyError(EngineError):
    """A second generation was started while one is running on the same model."""
