"""The embedded engine: a GGUF loaded in-process with llama-cpp-python.

    engine = Engine.load(path)                      # ModelLoadError on a bad file
    for event in engine.stream(messages, params={"temperature": 0.2, "stop": ["<|im_end|>"]}):
        ...                                         # PromptStarted, *Delta, Finished

One Engine runs one generation at a time (llama.cpp contexts are not re-entrant); a second
concurrent `stream` raises EngineBusyError. The KV cache survives between calls, so a
follow-up turn only evaluates what it adds to the conversation, and a prompt whose reading
was cancelled continues where it stopped.

With a KVStateStore (`states`), the cache also survives the process: before a cache of
MIN_SAVED_TOKENS or more is lost (another conversation's prompt replaces it, or the engine
closes) it is saved, and a prompt that starts with a saved state's tokens restores it
instead of reading them again. With ReadingRates (`rates`), each read teaches the engine
this machine's reading rate for the model, for `estimate`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import llama_cpp

from app.engine.backend import BackendInfo, gpu_offload_supported, offloaded_layers
from app.engine.errors import ContextOverflowError, EngineBusyError
from app.engine.events import Event, Finished, GenerationStats
from app.engine.generation import ChunkPlan, Generation
from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore, SavedState, model_key
from app.engine.loading import open_model
from app.engine.memory import MemoryEstimate, ModelShape
from app.engine.messages import Message, with_system
from app.engine.params import DEFAULT_NUM_CTX, GenerationParams
from app.engine.prefix import common_prefix
from app.engine.prompt import ChatFormat, Prompt, PromptBuilder
from app.engine.reading import PromptEstimate, ReadingRates
from app.engine.threads import ThreadPolicy
from converters.llama_runtime import (
    cached_tokens,
    layer_count,
    load_state,
    reset_cache,
    save_state,
    set_threads,
    state_size,
    system_info,
    token_text,
)

# A saved state is restored only when it spares reading at least this many more tokens
# than the cache in memory does (loading one costs about as much as reading a few dozen).
MIN_RESTORE_GAIN = 64


class Engine:
    """A chat model: render, stream, cancel, reuse the cache. Create with `Engine.load`."""

    def __init__(self, llm: llama_cpp.Llama, path: Path, policy: ThreadPolicy,
                 gpu_layers: int, *, shape: ModelShape | None = None,
                 memory: MemoryEstimate | None = None, states: KVStateStore | None = None,
                 rates: ReadingRates | None = None, model_sha256: str | None = None,
                 read_chunk: int | None = None) -> None:
        self._llm = llm
        self.path = path
        self._policy = policy
        self._gpu_layers = gpu_layers
        self._threads = llm.n_threads
        self._lock = threading.Lock()
        self.metadata: dict[str, str] = dict(llm.metadata)
        self._prompts = PromptBuilder(_chat_format(llm), self.tokenize, llm.n_ctx())
        self.shape = shape or ModelShape.of(path)
        self.memory = memory  # the estimate it was loaded under (None: loaded elsewhere)
        self._states = states
        self._rates = rates if rates is not None else ReadingRates(None)
        self._sha256 = model_sha256
        self._state_key: str | None = None
        self._saved: tuple[int, ...] = ()  # the tokens a state on disk already holds
        self._owner: str | None = None  # the conversation the cache was read for
        self._forgotten: set[str] = set()  # deleted conversations: their caches are not saved
        self._read_chunk = read_chunk
        # Per model file: the rates of two files of one name and size are the same model's.
        self.rate_key = model_sha256 or f"{path.name}:{path.stat().st_size}"

    @classmethod
    def load(cls, path: Path | str, *, n_ctx: int = DEFAULT_NUM_CTX,
             n_gpu_layers: int | None = None, n_threads: int | None = None,
             available_memory: int | None = None, states: KVStateStore | None = None,
             rates: ReadingRates | None = None, model_sha256: str | None = None,
             read_chunk: int | None = None) -> Engine:
        """Load a GGUF. `n_gpu_layers` None: all layers on the GPU when llama.cpp was built
        with offload support, else 0. `n_threads` None: the adaptive ThreadPolicy.

        Refused before loading: an n_ctx over the trained context (ContextSizeError), or
        one whose memory estimate exceeds `available_memory` (default: measured now;
        InsufficientMemoryError). `states`: where KV caches are saved and restored (None:
        never). `rates`: where reading rates are remembered (None: this session only).
        `model_sha256`: the file's checksum when known (the manifest's), else it is
        computed once when a state is first saved. `read_chunk`: a fixed prompt chunk
        size in tokens (None: chunks of about a second)."""
        opened = open_model(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers,
                            n_threads=n_threads, available_memory=available_memory)
        return cls(opened.llm, Path(path), opened.policy, opened.gpu_layers,
                   shape=opened.shape, memory=opened.memory, states=states, rates=rates,
                   model_sha256=model_sha256, read_chunk=read_chunk)

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
               think: bool | None = None, cancel: threading.Event | None = None,
               owner: str | None = None) -> Iterator[Event]:
        """Generate the assistant's reply to `messages` (dicts with role and content).

        `params`: the Modelfile's sampling parameters (temperature, top_p, top_k,
        repeat_penalty, num_predict, seed, stop...). `think`: thinking on/off for templates
        that support it (None: the template's default). `cancel`: set it to stop within one
        token while writing, or at the next chunk while reading the prompt; Finished then
        carries the partial texts with stop_reason "cancelled", and what was read stays
        in the cache. `owner`: the conversation this is (a state saved of the cache is
        marked with it, for `forget`). Nothing runs until the first event is requested;
        that is also when ContextOverflowError (even the last message cannot fit) or
        EngineBusyError is raised.
        """
        requested = time.perf_counter()
        if not self._lock.acquire(blocking=False):
            raise EngineBusyError("the model is already generating; wait or cancel first")
        try:
            sampling = GenerationParams.coerce(params)
            prompt = self.prompt(messages, system=system, params=sampling, think=think)
            restored = self._prepare_cache(prompt.tokens)  # saves the last owner's cache
            self._owner = owner
            self._threads = self._policy.choose().threads
            set_threads(self._llm, self._threads)
            generation = Generation(
                self._llm, prompt.tokens, sampling, inside_think=prompt.opens_thinking,
                dropped_turns=prompt.dropped_turns, threads=self._threads, cancel=cancel,
                requested=requested, chunks=ChunkPlan(self._llm.n_batch, self._read_chunk),
                restored=restored)
            for event in generation.run():
                if isinstance(event, Finished):
                    self._learn_rate(event.stats)
                yield event
        finally:
            self._lock.release()

    def estimate(self, messages: Sequence[Message], *, system: str | None = None,
                 params: Mapping[str, Any] | GenerationParams | None = None,
                 think: bool | None = None) -> PromptEstimate:
        """Before sending: the prompt's tokens against the context, how many of them must be
        read (not in the cache in memory or on disk), and how long that takes at this
        machine's measured rate. Safe to call while nothing is generating."""
        sampling = GenerationParams.coerce(params)
        reserve = sampling.answer_reserve(self.n_ctx)
        rate = self._rates.rate(self.rate_key)
        try:
            prompt = self.prompt(messages, system=system, params=sampling, think=think)
        except ContextOverflowError as exc:
            return PromptEstimate(exc.needed, self.n_ctx, reserve, exc.needed, 0, False, rate)
        tokens = prompt.tokens
        known = common_prefix(cached_tokens(self._llm), tokens)
        found = self._saved_state_for(tokens) if self._states is not None else None
        if found is not None:
            known = max(known, found[1])
        to_read = max(1, len(tokens) - known)
        return PromptEstimate(len(tokens), self.n_ctx, reserve, to_read, prompt.dropped_turns,
                              True, rate)

    def saved_state(self, messages: Sequence[Message], *, system: str | None = None,
                    params: Mapping[str, Any] | GenerationParams | None = None,
                    think: bool | None = None) -> tuple[SavedState, int, int] | None:
        """The state on disk that would serve this conversation (F4 shows its size), how
        many of the conversation's tokens it holds and how many the conversation has; None
        when there is none or no store. A state that shares only the start every
        conversation with this system prompt has (another conversation's) is not it."""
        if self._states is None:
            return None
        options: dict[str, Any] = {"system": system, "params": params, "think": think}
        tokens = self.prompt(messages, **options).tokens
        found = self._saved_state_for(tokens)
        # The start of every conversation: what two different first messages share.
        head = common_prefix(self.prompt([{"role": "user", "content": "a"}], **options).tokens,
                             self.prompt([{"role": "user", "content": "b"}], **options).tokens)
        if found is None or found[1] < head + MIN_RESTORE_GAIN:
            return None
        return found[0], found[1], len(tokens)

    @property
    def states(self) -> KVStateStore | None:
        """Where this engine saves its states (None: never, as in incognito)."""
        return self._states

    def save_state(self) -> SavedState | None:
        """Save the cache now if it is long enough and not saved yet (the engine does it by
        itself before losing a cache, and on close)."""
        with self._lock:
            return self._save_if_unsaved(cached_tokens(self._llm))

    def cached_tokens(self) -> list[int]:
        """The tokens whose keys and values the context holds (the previous prompt and
        answer): the next prompt reuses its longest common prefix with them."""
        return cached_tokens(self._llm)

    def reset(self) -> None:
        """Forget the cache (a new conversation would not reuse it anyway)."""
        with self._lock:
            reset_cache(self._llm)

    def forget(self, owner: str) -> int:
        """The conversation `owner` was deleted: its reading is never saved from now on
        (not even by a generation of another conversation that is about to replace it),
        the states saved for it are removed, and the cache is dropped if it is still its
        own. Returns how many states went."""
        self._forgotten.add(owner)
        removed = self._states.discard_owned(owner) if self._states is not None else 0
        if self._lock.acquire(blocking=False):  # busy: the cache is another conversation's
            try:
                if self._owner == owner:
                    reset_cache(self._llm)
                    self._saved, self._owner = (), None
            finally:
                self._lock.release()
        return removed

    def close(self) -> None:
        """Save the cache (with a store) and free the model. A generation still running in
        another thread keeps its cache unsaved."""
        if self._lock.acquire(blocking=False):
            try:
                self._save_if_unsaved(cached_tokens(self._llm))
            finally:
                self._lock.release()
        self._llm.close()

    # ---------------------------------------------------------------- saved states

    @property
    def _recurrent(self) -> bool:
        """Recurrent layers keep a running state that cannot be cut back to a prefix."""
        return self.shape.recurrent_bytes > 0

    def _key(self) -> str:
        if self._state_key is None:
            assert self._states is not None
            self._state_key = model_key(self._states, self.path, self._sha256)
        return self._state_key

    def _saved_state_for(self, tokens: Sequence[int]) -> tuple[SavedState, int] | None:
        assert self._states is not None
        return self._states.best(self._key(), tokens, whole_only=self._recurrent,
                                 limit=self.n_ctx)

    def _prepare_cache(self, tokens: list[int]) -> int:
        """Before reading `tokens`: restore a saved state when it spares more reading than
        the cache in memory, saving that cache first if it is about to be lost. Returns
        how many tokens came from disk."""
        if self._states is None:
            return 0
        cached = cached_tokens(self._llm)
        in_memory = common_prefix(cached, tokens)
        found = self._saved_state_for(tokens)
        if found is not None and found[1] >= in_memory + MIN_RESTORE_GAIN:
            self._save_if_unsaved(cached)
            return self._restore(*found)
        if len(cached) - in_memory >= MIN_SAVED_TOKENS:
            self._save_if_unsaved(cached)  # the prompt replaces most of this cache
        return 0

    def _restore(self, entry: SavedState, shared: int) -> int:
        assert self._states is not None
        if self._states.verified(entry) and load_state(self._llm, entry.path) is not None:
            self._states.touch(entry)
            self._saved = entry.tokens
            return shared
        self._states.discard(entry)  # verified already removed a mismatch; llama.cpp refused
        self._saved = ()
        return 0

    def _save_if_unsaved(self, cached: list[int]) -> SavedState | None:
        if self._states is None or len(cached) < MIN_SAVED_TOKENS or \
                self._owner in self._forgotten:
            return None
        if common_prefix(self._saved, cached) == len(cached):
            return None  # a state on disk holds it already
        try:
            key = self._key()
            if self._states.covers(key, cached):
                return None
            entry = self._states.save(key, cached, lambda path: save_state(self._llm, path),
                                      state_size(self._llm), supersede=not self._recurrent,
                                      owner=self._owner)
            if entry is not None and self._owner in self._forgotten:
                self._states.discard(entry)  # deleted while it was being written
                return None
        except OSError:
            return None  # a full or read-only disk: the state is not saved, nothing fails
        if entry is not None:
            self._saved = entry.tokens
        return entry

    def _learn_rate(self, stats: GenerationStats) -> None:
        read = stats.prompt_evaluated if stats.prompt_read < 0 else stats.prompt_read
        self._rates.record(self.rate_key, read, stats.prompt_ms / 1000)

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
