"""The intent-safety classifier, fed exactly as seed 002 trained it.

Input: the task description, then `ctx:` and the last 8 dialogue lines `[role] text`
(a trailing assistant turn removed: the bot reply under review is never shown). Only the
ctx is trimmed, from the left, at the token level, so that the whole text fits 4096
tokens without ever cutting the task description. `format_ctx` and `build_model_text` are
the seed's code, line for line; the tokenizer is the GGUF's own (`GGUFTokenizer`), which
tokenizes as the source tokenizer does (the converter checks that parity).

Output: llama.cpp runs the classifier head (pooling RANK: last token) and applies softmax,
so we read exactly n_cls_out = 2 probabilities: [non_unsafe, unsafe].
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import llama_cpp

from app.engine.errors import ModelLoadError
from app.engine.loading import open_model
from app.engine.threads import ThreadPolicy
from converters.llama_runtime import class_probabilities, set_threads, token_piece

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


class Classifier:
    """intent-safety: `classify(turns)` -> Verdict. Create with `Classifier.load`."""

    def __init__(self, llm: llama_cpp.Llama, task_description: str, *,
                 threshold: float = DEFAULT_THRESHOLD,
                 policy: ThreadPolicy | None = None) -> None:
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

    @classmethod
    def load(cls, path: Path | str, *, task_description: str,
             threshold: float = DEFAULT_THRESHOLD, n_gpu_layers: int | None = None,
             n_threads: int | None = None, f32_cache: bool = False) -> Classifier:
        """Load a classifier GGUF (context MAX_LENGTH). The task description and threshold
        come from the assistant's data file (modelfiles/intent-safety.json)."""
        opened = open_model(path, n_ctx=MAX_LENGTH, n_gpu_layers=n_gpu_layers,
                            n_threads=n_threads, classifier=True, f32_cache=f32_cache)
        try:
            return cls(opened.llm, task_description, threshold=threshold, policy=opened.policy)
        except ModelLoadError:
            opened.llm.close()
            raise

    def model_text(self, turns: Sequence[Mapping[str, Any]]) -> str:
        """The exact text the classifier reads for these turns."""
        return build_model_text(self.task_description, format_ctx(turns), self.tokenizer)

    def model_tokens(self, turns: Sequence[Mapping[str, Any]]) -> list[int]:
        """As the seed encodes it: truncation side left, max_length MAX_LENGTH."""
        return self.tokenizer.encode_for_model(self.model_text(turns))[-MAX_LENGTH:]

    def probabilities(self, turns: Sequence[Mapping[str, Any]]) -> list[float]:
        tokens = self.model_tokens(turns)
        with self._lock:
            set_threads(self._llm, self._policy.choose().threads)
            return class_probabilities(self._llm, tokens)

    def classify(self, turns: Sequence[Mapping[str, Any]],
                 threshold: float | None = None) -> Verdict:
        """The verdict on the user's current intent: unsafe when prob_unsafe >= threshold
        (the classifier's own threshold unless given)."""
        limit = self.threshold if threshold is None else threshold
        return verdict_from(self.probabilities(turns), limit)

    def close(self) -> None:
        self._llm.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
