"""The intent-safety classifier, fed exactly as seed 002 trained it.

Input: the task description, then `ctx:` and the last 8 dialogue lines `[role] text`
(a trailing assistant turn removed: the bot reply under review is never shown). Only the
ctx is trimmed, from the left, at the token level, so that the whole text fits 4096
tokens without ever cutting the task description. `format_ctx` and `build_model_text` are
the seed's code, line for line; the tokenizer is the GGUF's own (`GGUFTokenizer`), which
tokenizes as the source tokenizer does (the converter checks that parity).

Output: llama.cpp runs the classifier head (pooling RANK: last token) and applies softmax,
so we read exactly n_cls_out = 2 probabilities: [non_unsafe, unsafe].

Reading: the gate classifies before every message, and the text it reads grows by what the
conversation added (the task description and the earlier turns stay a common prefix until
the 8-turn window moves or the left trim starts). So the classifier keeps its KV cache
between calls and reads only the tokens after the longest common prefix with the previous
text, in chunks, with progress and cancel like the chat engine. Attention is causal, so the
last token's state, and the verdict, are the same as a fresh read's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import llama_cpp

from app.engine.errors import ModelLoadError, ReadingCancelled
from app.engine.events import ReadingProgress
from app.engine.generation import ChunkPlan, read_chunks
from app.engine.loading import open_model
from app.engine.prefix import common_prefix
from app.engine.threads import ThreadPolicy
from converters.llama_runtime import (
    cut_cache,
    decode_at,
    pooled_output,
    set_threads,
    token_piece,
)

MAX_LENGTH = 4096
DEFAULT_THRESHOLD = 0.5
MAX_TURNS = 8
LABELS = ("non_unsafe", "unsafe")
_ROLE_MAP = {"user": "user", "you": "user", "assistant": "assistant", "bot": "assistant",
             "system": "system"}


class TextTokenizer(Protocol):
    """What build_model_text needs: HF's tokenizer(text, add_special_tokens=False) and
    decode(ids, skip_special_tokens=False)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


def format_ctx(turns: Sequence[Mapping[str, Any]], max_turns: int = MAX_TURNS,
               drop_trailing_assistant: bool = True) -> str:
    """Seed 002's format_ctx: `[role] text` lines of the last `max_turns` non-empty turns,
    joined by blank lines; roles user/you -> user, assistant/bot -> assistant, system ->
    system, anything else -> unknown."""
    normalized = []
    for turn in turns:
        role = _ROLE_MAP.get(str(turn.get("role", "")).lower(), "unknown")
        text = str(turn.get("content", "")).strip()
        if text:
            normalized.append({"role": role, "text": text})
    if drop_trailing_assistant and normalized and normalized[-1]["role"] == "assistant":
        normalized = normalized[:-1]
    selected = normalized[-max_turns:]
    return "\n\n".join(f"[{turn['role']}] {turn['text']}" for turn in selected).strip()


def build_model_text(task_description: str, ctx_text: str, tokenizer: TextTokenizer,
                     max_length: int = MAX_LENGTH) -> str:
    """Seed 002's build_model_text: the task prefix kept whole, the ctx trimmed from the
    left to `max_length - prefix tokens - 8` tokens and decoded back."""
    prefix = f"任务描述:\n{task_description}\n\nctx:\n"
    fixed_token_count = len(tokenizer.encode(prefix))
    ctx_budget = max(0, max_length - fixed_token_count - 8)
    ctx_ids = tokenizer.encode(ctx_text.strip())
    if len(ctx_ids) > ctx_budget:
        ctx_ids = ctx_ids[-ctx_budget:] if ctx_budget > 0 else []
    ctx_text = tokenizer.decode(ctx_ids).strip()
    return f"{prefix}{ctx_text}".strip()


class GGUFTokenizer:
    """The GGUF's tokenizer with the HF calls' semantics: no BOS/EOS added, special-token
    text parsed as special tokens, and decoding that writes special tokens out."""

    def __init__(self, llm: llama_cpp.Llama) -> None:
        self._llm = llm

    def encode(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def encode_for_model(self, text: str) -> list[int]:
        """HF's default call (add_special_tokens=True): the vocabulary's BOS, if any."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def decode(self, ids: Sequence[int]) -> str:
        # Bytes first, then one lossy UTF-8 decode: a left cut through a character gives
        # U+FFFD as the HF tokenizer's decoder does.
        data = b"".join(token_piece(self._llm, int(i)) for i in ids)
        return data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Verdict:
    label: int  # 1 unsafe, 0 non_unsafe
    label_text: str
    prob_non_unsafe: float
    prob_unsafe: float
    threshold: float

    @property
    def unsafe(self) -> bool:
        return self.label == 1

    def as_dict(self) -> dict[str, Any]:
        """The seed's predict_intent_safety result."""
        return asdict(self)


def verdict_from(probabilities: Sequence[float], threshold: float) -> Verdict:
    prob_non_unsafe, prob_unsafe = float(probabilities[0]), float(probabilities[1])
    label = int(prob_unsafe >= threshold)
    return Verdict(label, LABELS[label], prob_non_unsafe, prob_unsafe, threshold)


Progress = Callable[[ReadingProgress], object]
READ_UBATCH = 512  # a chunk larger than llama.cpp's micro-batch reads no faster


class Classifier:
    """intent-safety: `classify(turns)` -> Verdict. Create with `Classifier.load`."""

    def __init__(self, llm: llama_cpp.Llama, task_description: str, *,
                 threshold: float = DEFAULT_THRESHOLD,
                 policy: ThreadPolicy | None = None, read_chunk: int | None = None,
                 keep_cache: bool = True) -> None:
        n_out = llama_cpp.llama_model_n_cls_out(llm.model)
        if n_out != len(LABELS):
            raise ModelLoadError(f"not an intent-safety classifier: {n_out} class outputs, "
                                 f"expected {len(LABELS)}")
        self._llm = llm
        self.task_description = task_description.strip()
        self.threshold = threshold
        self.tokenizer = GGUFTokenizer(llm)
        self._policy = policy or ThreadPolicy(llm.n_threads)
        self._lock = threading.Lock()
        self._read_chunk = read_chunk
        self.keep_cache = keep_cache  # False: every check reads from scratch (benchmarks)
        self._cached: list[int] = []  # the tokens whose KV the context holds
        self.last_read = 0  # tokens the last check evaluated (the rest came from the cache)

    @classmethod
    def load(cls, path: Path | str, *, task_description: str,
             threshold: float = DEFAULT_THRESHOLD, n_gpu_layers: int | None = None,
             n_threads: int | None = None, f32_cache: bool = False,
             read_chunk: int | None = None) -> Classifier:
        """Load a classifier GGUF (context MAX_LENGTH). The task description and threshold
        come from the assistant's data file (modelfiles/intent-safety.json). `read_chunk`:
        a fixed chunk size in tokens (None: chunks of about a second)."""
        opened = open_model(path, n_ctx=MAX_LENGTH, n_gpu_layers=n_gpu_layers,
                            n_threads=n_threads, classifier=True, f32_cache=f32_cache)
        try:
            return cls(opened.llm, task_description, threshold=threshold, policy=opened.policy,
                       read_chunk=read_chunk)
        except ModelLoadError:
            opened.llm.close()
            raise

    def model_text(self, turns: Sequence[Mapping[str, Any]]) -> str:
        """The exact text the classifier reads for these turns."""
        return build_model_text(self.task_description, format_ctx(turns), self.tokenizer)

    def model_tokens(self, turns: Sequence[Mapping[str, Any]]) -> list[int]:
        """As the seed encodes it: truncation side left, max_length MAX_LENGTH."""
        return self.tokenizer.encode_for_model(self.model_text(turns))[-MAX_LENGTH:]

    def probabilities(self, turns: Sequence[Mapping[str, Any]], *,
                      cancel: threading.Event | None = None,
                      progress: Progress | None = None) -> list[float]:
        """[non_unsafe, unsafe] for these turns. `progress` hears of every chunk read;
        `cancel` stops between chunks with ReadingCancelled (what was read is kept)."""
        tokens = self.model_tokens(turns)
        with self._lock:
            set_threads(self._llm, self._policy.choose().threads)
            return self._read(tokens, cancel, progress)

    def _read(self, tokens: list[int], cancel: threading.Event | None,
              progress: Progress | None) -> list[float]:
        # One token is always read again: the pooled output is the last decoded token's.
        keep = min(common_prefix(self._cached, tokens), len(tokens) - 1) \
            if self.keep_cache else 0
        if not cut_cache(self._llm, keep):
            keep = 0  # cut_cache cleared it
        self._cached = tokens[:keep]
        plan = ChunkPlan(READ_UBATCH, self._read_chunk)
        reading = read_chunks(tokens[keep:], self._decode_from(keep), plan, cancel)
        try:
            while True:
                report = next(reading)
                if progress is not None:
                    progress(report)
        except StopIteration as done:
            read = int(done.value)
        self.last_read = read
        self._cached = tokens[:keep + read]
        if keep + read < len(tokens):
            raise ReadingCancelled(f"the intent-safety check was cancelled after reading "
                                   f"{read:,} of {len(tokens) - keep:,} tokens")
        return pooled_output(self._llm)

    def _decode_from(self, keep: int) -> Callable[[list[int], int], None]:
        def decode(chunk: list[int], offset: int) -> None:
            decode_at(self._llm, chunk, keep + offset)

        return decode

    def classify(self, turns: Sequence[Mapping[str, Any]], threshold: float | None = None,
                 *, cancel: threading.Event | None = None,
                 progress: Progress | None = None) -> Verdict:
        """The verdict on the user's current intent: unsafe when prob_unsafe >= threshold
        (the classifier's own threshold unless given)."""
        limit = self.threshold if threshold is None else threshold
        return verdict_from(self.probabilities(turns, cancel=cancel, progress=progress), limit)

    def close(self) -> None:
        self._llm.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
