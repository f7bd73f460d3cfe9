"""The embedded engine: a GGUF loaded in-process with llama-cpp-python.

    engine = Engine.load(path)                      # ModelLoadError on a bad file
    for event in engine.stream(messages, params={"temperature": 0.2, "stop": ["<|im_end|>"]}):
        ...                                         # PromptStarted, *Delta, Finished

One Engine runs one generation at a time (llama.cpp contexts are not re-entrant); a second
concurrent `stream` raises EngineBusyError. The KV cache survives between calls, so a
follow-up turn only evaluates what it adds to the conversation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from app.engine.backend import BackendInfo, gpu_offload_supported, offloaded_layers
from app.engine.errors import EngineBusyError
from app.engine.events import Event
from app.engine.generation import Generation
from app.engine.loading import open_model
from app.engine.messages import Message, with_system
from app.engine.params import DEFAULT_NUM_CTX, GenerationParams
from app.engine.prompt import ChatFormat, Prompt, PromptBuilder
from app.engine.threads import ThreadPolicy
from converters.llama_runtime import (
    cached_tokens,
    layer_count,
    reset_cache,
    set_threads,
    system_info,
    token_text,
)


class Engine:
    """A chat model: render, stream, cancel, reuse the cache. Create with `Engine.load`."""

    def __init__(self, llm: llama_cpp.Llama, path: Path, policy: ThreadPolicy,
                 gpu_layers: int) -> None:
        self._llm = llm
        self.path = path
        self._policy = policy
        self._gpu_layers = gpu_layers
        self._threads = llm.n_threads
        self._lock = threading.Lock()
        self.metadata: dict[str, str] = dict(llm.metadata)
        self._prompts = PromptBuilder(_chat_format(llm), self.tokenize, llm.n_ctx())

    @classmethod
    def load(cls, path: Path | str, *, n_ctx: int = DEFAULT_NUM_CTX,
             n_gpu_layers: int | None = None, n_threads: int | None = None) -> Engine:
        """Load a GGUF. `n_gpu_layers` None: all layers on the GPU when llama.cpp was built
        with offload support, else 0. `n_threads` None: the adaptive ThreadPolicy."""
        opened = open_model(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers,
                            n_threads=n_threads)
        return cls(opened.llm, Path(path), opened.policy, opened.gpu_layers)

    @property
    def n_ctx(self) -> int:
        return self._llm.n_ctx()

    @property
    def chat_template(self) -> str:
        return self._prompts.format.template

    def backend_info(self) -> BackendInfo:
        total = layer_count(self._llm)
        return BackendInfo(
            gpu_offload_supported=gpu_offload_supported(),
            gpu_layers=offloaded_layers(self._gpu_layers, total), total_layers=total,
            threads=self._threads, physical_cores=self._policy.cores,
            adaptive_threads=self._policy.fixed is None, system_info=system_info())

    def tokenize(self, text: str) -> list[int]:
        """Prompt text to tokens: BOS added when the vocabulary asks for it, special tokens
        written in the text (`<|im_start|>`) parsed as such."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def prompt(self, messages: Sequence[Message], *, system: str | None = None,
               params: Mapping[str, Any] | GenerationParams | None = None,
               think: bool | None = None) -> Prompt:
        """The prompt `stream` would evaluate (rendered, tokenized, fitted to the context)."""
        sampling = GenerationParams.coerce(params)
        return self._prompts.build(with_system(messages, system), think=think,
                                   reserve=sampling.answer_reserve(self.n_ctx))

    def stream(self, messages: Sequence[Message], *, system: str | None = None,
               params: Mapping[str, Any] | GenerationParams | None = None,
               think: bool | None = None,
               cancel: threading.Event | None = None) -> Iterator[Event]:
        """Generate the assistant's reply to `messages` (dicts with role and content).

        `params`: the Modelfile's sampling parameters (temperature, top_p, top_k,
        repeat_penalty, num_predict, seed, stop...). `think`: thinking on/off for templates
        that support it (None: the template's default). `cancel`: set it to stop within one
        token; Finished then carries the partial texts with stop_reason "cancelled".
        Nothing runs until the first event is requested; that is also when
        ContextOverflowError (even the last message cannot fit) or EngineBusyError is raised.
        """
        requested = time.perf_counter()
        if not self._lock.acquire(blocking=False):
            raise EngineBusyError("the model is already generating; wait or cancel first")
        try:
            sampling = GenerationParams.coerce(params)
            prompt = self.prompt(messages, system=system, params=sampling, think=think)
            self._threads = self._policy.choose().threads
            set_threads(self._llm, self._threads)
            yield from Generation(self._llm, prompt.tokens, sampling,
                                  inside_think=prompt.opens_thinking,
                                  dropped_turns=prompt.dropped_turns, threads=self._threads,
                                  cancel=cancel, requested=requested).run()
        finally:
            self._lock.release()

    def cached_tokens(self) -> list[int]:
        """The tokens whose keys and values the context holds (the previous prompt and
        answer): the next prompt reuses its longest common prefix with them."""
        return cached_tokens(self._llm)

    def reset(self) -> None:
        """Forget the cache (a new conversation would not reuse it anyway)."""
        with self._lock:
            reset_cache(self._llm)

    def close(self) -> None:
        self._llm.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _chat_format(llm: llama_cpp.Llama) -> ChatFormat:
    metadata = llm.metadata

    def special(key: str) -> str:
        token = metadata.get(f"tokenizer.ggml.{key}_token_id")
        return token_text(llm, int(token)) if token is not None else ""

    adds_bos = metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    return ChatFormat(template=metadata.get("tokenizer.chat_template", ""),
                      bos_token=special("bos"), eos_token=special("eos"),
                      bos_id=llm.token_bos() if adds_bos else None)
