"""llama-cpp-python, the way Amicus uses it: quiet logs, clear load errors, classification.

llama.cpp writes its progress to stderr by default; we keep only errors, and keep the last
ones so a failed load can be reported in one line.

The few private llama-cpp-python attributes Amicus relies on (the context, batch and token
buffer of `Llama`) are touched here and in `llama_eval` (whole-chunk evaluation and the
ggml tensor layout its eval callback reads), nowhere else: a version bump has two places
to check.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import _internals

from converters.errors import InputError

_GGUF_MAGIC = b"GGUF"
# enum ggml_log_level of the vendored ggml: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
# (llama_cpp/_logger.py still documents an older order in which ERROR was 3).
_GGML_LOG_LEVEL_ERROR = 4
_recent_errors: deque[str] = deque(maxlen=8)
# llama.cpp prefixes its messages with the function names of the call chain.
_ERROR_PREFIX = re.compile(r"^(\w+: )+(error loading model: )?(\w+: )?")


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    if level == _GGML_LOG_LEVEL_ERROR and text:
        _recent_errors.append(text.decode("utf-8", "replace").strip())


def quiet_llama_logs() -> None:
    """Route llama.cpp's log through us: errors are kept, the rest dropped."""
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def last_llama_error() -> str:
    return _recent_errors[-1] if _recent_errors else "no detail from llama.cpp"


def first_load_error() -> str:
    """The most specific message of a failed load: llama.cpp logs the cause first, then
    'failed to load model' once per level of the call chain."""
    for message in _recent_errors:
        detail = _ERROR_PREFIX.sub("", message).strip()
        if detail and not detail.startswith("failed to load model"):
            return detail
    return last_llama_error()


# ggml's GGML_MAX_N_THREADS: llama.cpp aborts the process when asked for more threads.
MAX_THREADS = 512


def check_threads(threads: int | None) -> None:
    """A thread count the user gave (None: Amicus chooses) that llama.cpp can run."""
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must be from 1 to {MAX_THREADS}, not {threads}")


class GGUFLoadError(InputError):
    """A model file is missing, is not a GGUF, or llama.cpp refused to load it."""

    title = "The model could not be loaded"


def check_gguf_file(path: Path) -> None:
    """Refuse what llama.cpp would crash or fail obscurely on: missing, short, not GGUF."""
    if not path.is_file():
        raise GGUFLoadError(f"{path}: no such model file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise GGUFLoadError(f"{path}: cannot read the model file ({exc.strerror})") from exc
    if len(head) < 8 or head[:4] != _GGUF_MAGIC:
        raise GGUFLoadError(f"{path}: not a GGUF file")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (2, 3):
        raise GGUFLoadError(f"{path}: unsupported GGUF version {version}")


def load_llama(path: Path, *, n_ctx: int = 512, classifier: bool = False,
               n_threads: int | None = None, n_gpu_layers: int = 0,
               f32_cache: bool = False) -> llama_cpp.Llama:
    """Load a GGUF; failures become one-line GGUFLoadErrors naming the file. `f32_cache`
    keeps the KV cache in F32 (exact comparisons) instead of llama.cpp's F16 default.

    A classifier gets a logical batch as large as its context: class_probabilities decodes
    the whole sequence in one call, which llama.cpp splits into micro-batches of 512 (the
    pooled output is the same; a 4096-token micro-batch would need gigabytes of attention
    scores on a 4B model)."""
    check_gguf_file(path)
    quiet_llama_logs()
    options: dict[str, Any] = {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_RANK,
                                  "embedding": True,
                                  "n_batch": n_ctx} if classifier else {}
    if f32_cache:
        options.update(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                       flash_attn=False)
    _recent_errors.clear()
    try:
        return llama_cpp.Llama(str(path), n_ctx=n_ctx, n_threads=n_threads,
                               n_threads_batch=n_threads, verbose=False,
                               n_gpu_layers=n_gpu_layers, **options)
    except (ValueError, RuntimeError) as exc:
        raise GGUFLoadError(f"{path}: llama.cpp cannot load it ({first_load_error()})") \
            from exc


def class_probabilities(llm: llama_cpp.Llama, tokens: Sequence[int]) -> list[float]:
    """The classifier head's output for one sequence: exactly n_cls_out probabilities.

    llama.cpp applies softmax for qwen3 classifiers. Llama.embed() would return n_embd floats
    of which only the first n_cls_out are written, so we read the pooled output ourselves.
    """
    if len(tokens) > llm.n_ctx():
        raise InputError(f"{len(tokens)} tokens exceed the context of {llm.n_ctx()}")
    return pooled_probabilities(llm.model, llm._ctx, llm._batch, tokens)


def pooled_probabilities(model: Any, ctx: _internals.LlamaContext,
                         batch: _internals.LlamaBatch, tokens: Sequence[int]) -> list[float]:
    """Decode `tokens` as one sequence from an empty cache in a pooling context and read
    the n_cls_out pooled outputs (shared by `Llama` objects and converters.llama_eval)."""
    n_out = llama_cpp.llama_model_n_cls_out(model)
    if n_out <= 0:
        raise InputError("model has no classifier head")
    ctx.kv_cache_clear()
    batch.reset()
    batch.add_sequence(list(tokens), 0, False)
    ctx.decode(batch)
    batch.reset()
    pointer = llama_cpp.llama_get_embeddings_seq(ctx.ctx, 0)
    if not pointer:
        raise InputError("llama.cpp returned no pooled output (is pooling RANK?)")
    return [float(pointer[i]) for i in range(n_out)]


def last_logits(llm: llama_cpp.Llama) -> np.ndarray:
    """The logits of the last token evaluated, read from llama.cpp itself.

    Llama.scores is only filled when the model was loaded with logits_all=True; otherwise
    it is uninitialised memory (llama-cpp-python 0.3.36 samples inside llama.cpp)."""
    pointer = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    if not pointer:
        raise InputError("llama.cpp returned no logits for the last token")
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).copy()


# ---------------------------------------------------------------------------- generation


def set_threads(llm: llama_cpp.Llama, n_threads: int) -> None:
    """Threads for the next decode calls, prompt and generation alike (cheap: no realloc)."""
    llm._ctx.set_n_threads(n_threads, n_threads)
    llm.n_threads = llm.n_threads_batch = n_threads


def is_end_of_generation(llm: llama_cpp.Llama, token: int) -> bool:
    """EOS, EOT and every other token the vocabulary marks as ending a turn."""
    return bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, token))


def token_piece(llm: llama_cpp.Llama, token: int) -> bytes:
    """The bytes of one token, control tokens rendered as their text (`<|im_end|>`, `</s>`).

    Pieces can be partial UTF-8 sequences; `Llama.detokenize` would also drop the leading
    space after a BOS and truncate pieces longer than 32 bytes, which we do not want."""
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buffer, size, 0, True)
        if n >= 0:
            return buffer.raw[:n]
        size = -n


def token_text(llm: llama_cpp.Llama, token: int) -> str:
    """The vocabulary's text for a token id (`<s>`, `<|endoftext|>`)."""
    return llm._model.token_get_text(token)


def cached_tokens(llm: llama_cpp.Llama) -> list[int]:
    """The token sequence whose keys and values are in the context now."""
    return llm.input_ids[: llm.n_tokens].tolist()


def truncate_cache(llm: llama_cpp.Llama, keep: int) -> bool:
    """Keep the first `keep` cached tokens and forget the rest. False when the model's memory
    cannot be cut there (recurrent layers keep a running state, not one entry per token):
    the caller must then start from an empty context (`reset`)."""
    if keep <= 0:
        reset_cache(llm)
        return True
    if keep >= llm.n_tokens:
        return True
    if not llm._ctx.kv_cache_seq_rm(-1, keep, -1):
        return False
    llm.n_tokens = keep
    return True


def reset_cache(llm: llama_cpp.Llama) -> None:
    llm.reset()
    llm._ctx.kv_cache_clear()


class Sampler:
    """llama.cpp's sampler chain in Ollama's order: repetition penalties, top-k, top-p,
    min-p, temperature, then a seeded draw (greedy when the temperature is 0)."""

    def __init__(self, llm: llama_cpp.Llama, *, temperature: float, top_k: int, top_p: float,
                 min_p: float, repeat_penalty: float, repeat_last_n: int,
                 presence_penalty: float, frequency_penalty: float, seed: int | None) -> None:
        self._chain = _internals.LlamaSampler()
        self._chain.add_penalties(llm.n_vocab(), repeat_last_n, repeat_penalty,
                                  frequency_penalty, presence_penalty)
        if temperature <= 0:
            self._chain.add_greedy()
            return
        if top_k > 0:
            self._chain.add_top_k(top_k)
        self._chain.add_top_p(top_p, 1)
        if min_p > 0:
            self._chain.add_min_p(min_p, 1)
        self._chain.add_temp(temperature)
        self._chain.add_dist(llama_cpp.LLAMA_DEFAULT_SEED if seed is None or seed < 0 else seed)

    def sample(self, llm: llama_cpp.Llama) -> int:
        """Draw the next token from the logits of the last decoded position (and record it
        for the repetition penalties)."""
        return int(llama_cpp.llama_sampler_sample(self._chain.sampler, llm.ctx, -1))

    def close(self) -> None:
        self._chain.close()


# ---------------------------------------------------------------------------- backend


def gpu_offload_supported() -> bool:
    return bool(llama_cpp.llama_supports_gpu_offload())


def layer_count(llm: llama_cpp.Llama) -> int:
    return int(llama_cpp.llama_model_n_layer(llm.model))


def system_info() -> str:
    """llama.cpp's one-line summary of the CPU features and backends compiled in."""
    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
