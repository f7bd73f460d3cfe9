"""Inference on GGUF models through llama-cpp-python. Never imports textual.

    from app.engine import Engine, Classifier, FakeEngine
    engine = Engine.load(path)                      # ModelLoadError on a bad file
    for event in engine.stream(messages, params=modelfile_params, think=False, cancel=stop):
        ...                                         # PromptStarted, ReadingProgress...,
                                                    # ThinkingDelta, AnswerDelta,
                                                    # Finished(stats)

One concept per module: `engine` (load, stream, cache reuse, saved states, estimates),
`generation` (chunked reading and the token loop), `prompt` (template, one BOS, context
budget), `output` (stop strings, think split), `memory` (the memory estimate and num_ctx
checks, from the GGUF before loading), `kv_state` (KV caches saved on disk), `reading`
(prompt estimates, measured reading rates), `threads` (the thread policy), `classifier`
(intent-safety, seed 002), `fake` (scripted stand-in), `events`, `params`, `errors`,
`backend`, `protocol`, `prefix`; for servers: `server_client` (the one HTTP client: key,
https, retries, timeout, cancel), `credentials` (where the API key comes from),
`openai_backend` (chat on an OpenAI-compatible server), `remote_classifier` (intent-safety
on vLLM or llama.cpp's server). The heavy names (Engine, Classifier) are imported on first
use, so light users (the fake, the OpenAI-compatible backend) do not load llama.cpp.
"""

from __future__ import annotations

import importlib
from typing import Any

from app.engine.errors import (
    ContextOverflowError,
    EngineBusyError,
    EngineError,
    ModelLoadError,
    ReadingCancelled,
)
from app.engine.events import (
    AnswerDelta,
    Event,
    Finished,
    GenerationStats,
    PromptStarted,
    ReadingProgress,
    StopReason,
    ThinkingDelta,
    cut_off,
    dropped_turns_note,
)
from app.engine.params import GenerationParams

_LAZY = {
    "Engine": "app.engine.engine",
    "Classifier": "app.engine.classifier",
    "Verdict": "app.engine.classifier",
    "FakeEngine": "app.engine.fake",
    "BackendInfo": "app.engine.backend",
    "ChatEngine": "app.engine.protocol",
}

__all__ = [
    "AnswerDelta",
    "BackendInfo",
    "ChatEngine",
    "Classifier",
    "ContextOverflowError",
    "Engine",
    "EngineBusyError",
    "EngineError",
    "Event",
    "FakeEngine",
    "Finished",
    "GenerationParams",
    "GenerationStats",
    "ModelLoadError",
    "PromptStarted",
    "ReadingCancelled",
    "ReadingProgress",
    "StopReason",
    "ThinkingDelta",
    "Verdict",
    "cut_off",
    "dropped_turns_note",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'app.engine' has no attribute {name!r}")
