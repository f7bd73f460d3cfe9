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
    ctx.kv_cache_clear()
    batch.reset()
    batch.add_sequence(list(tokens), 0, False)
    try:
        ctx.decode(batch)
    finally:
        batch.reset()
    return _pooled(model, ctx)


def decode_at(llm: llama_cpp.Llama, tokens: Sequence[int], position: int) -> None:
    """Decode `tokens` as sequence 0's positions `position`... (the cache must hold the
    positions before it): how a classifier reads a prompt in chunks onto a kept cache."""
    llm._batch.set_batch(list(tokens), position, False)
    try:
        llm._ctx.decode(llm._batch)
    finally:
        llm._batch.reset()


def cut_cache(llm: llama_cpp.Llama, keep: int) -> bool:
    """Keep the first `keep` positions of the cache (False: llama.cpp cannot cut there; the
    cache is then cleared). For contexts whose tokens Amicus tracks itself (classifiers)."""
    if keep > 0 and llm._ctx.kv_cache_seq_rm(-1, keep, -1):
        return True
    llm._ctx.kv_cache_clear()
    return keep <= 0


def pooled_output(llm: llama_cpp.Llama) -> list[float]:
    """The classifier head's output for the last sequence decoded (pooling RANK: its last
    token's): exactly n_cls_out probabilities."""
    return _pooled(llm.model, llm._ctx)


def _pooled(model: Any, ctx: _internals.LlamaContext) -> list[float]:
    n_out = llama_cpp.llama_model_n_cls_out(model)
    if n_out <= 0:
        raise InputError("model has no classifier head")
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


# ---------------------------------------------------------------------------- GGUF header

# enum gguf_type of the vendored ggml.
_GGUF_SCALARS: dict[int, Any] = {0: ctypes.c_uint8, 1: ctypes.c_int8, 2: ctypes.c_uint16,
                                 3: ctypes.c_int16, 4: ctypes.c_uint32, 5: ctypes.c_int32,
                                 6: ctypes.c_float, 7: ctypes.c_bool, 10: ctypes.c_uint64,
                                 11: ctypes.c_int64, 12: ctypes.c_double}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
_GGUF_MAX_ARRAY = 4096  # per-layer arrays are kept; the vocabulary's token types are not


class _GGUFInitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


_ggml_base: Any = None


def _gguf_library() -> Any:
    """ggml's own GGUF reader (libggml-base, shipped inside llama-cpp-python): the parser
    llama.cpp loads models with, in C. gguf.GGUFReader (Python) takes half a minute on a
    151k-token vocabulary; this reads the same header in milliseconds."""
    global _ggml_base
    if _ggml_base is None:
        from llama_cpp._ctypes_extensions import load_shared_library

        lib = load_shared_library("ggml-base", Path(llama_cpp.__file__).parent / "lib")
        lib.gguf_init_from_file.argtypes = [ctypes.c_char_p, _GGUFInitParams]
        lib.gguf_init_from_file.restype = ctypes.c_void_p
        lib.gguf_free.argtypes = [ctypes.c_void_p]
        signatures: tuple[tuple[str, Any], ...] = (("gguf_get_n_kv", ctypes.c_int64),
                                                    ("gguf_get_n_tensors", ctypes.c_int64))
        for name, restype in signatures:
            getattr(lib, name).argtypes = [ctypes.c_void_p]
            getattr(lib, name).restype = restype
        indexed: tuple[tuple[str, Any], ...] = (("gguf_get_key", ctypes.c_char_p),
                              ("gguf_get_kv_type", ctypes.c_int),
                              ("gguf_get_arr_type", ctypes.c_int),
                              ("gguf_get_arr_n", ctypes.c_size_t),
                              ("gguf_get_arr_data", ctypes.c_void_p),
                              ("gguf_get_val_data", ctypes.c_void_p),
                              ("gguf_get_val_str", ctypes.c_char_p),
                              ("gguf_get_tensor_name", ctypes.c_char_p),
                              ("gguf_get_tensor_type", ctypes.c_int),
                              ("gguf_get_tensor_size", ctypes.c_size_t))
        for name, restype in indexed:
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int64]
            getattr(lib, name).restype = restype
        _ggml_base = lib
    return _ggml_base


class GGUFHeader:
    """A GGUF's metadata (numbers, strings and short numeric arrays such as per-layer head
    counts; the vocabulary's arrays are left out) and its tensors' names, ggml types and
    sizes in bytes."""

    def __init__(self, metadata: dict[str, Any], tensors: list[tuple[str, int, int]],
                 lengths: dict[str, int]) -> None:
        self.metadata = metadata
        self.tensors = tensors
        self.lengths = lengths  # every array's length (tokenizer.ggml.tokens: the vocabulary)


def read_gguf_header(path: Path) -> GGUFHeader:
    """Read a GGUF's header without loading any tensor (GGUFLoadError when it is not one)."""
    check_gguf_file(path)
    quiet_llama_logs()  # ggml reports a bad header on its log, which we keep to ourselves
    lib = _gguf_library()
    ctx = lib.gguf_init_from_file(str(path).encode(), _GGUFInitParams(True, None))
    if not ctx:
        raise GGUFLoadError(f"{path}: llama.cpp cannot load it (its GGUF header is truncated "
                            "or corrupt)")
    try:
        metadata = {lib.gguf_get_key(ctx, i).decode("utf-8", "replace"): _gguf_value(lib, ctx, i)
                    for i in range(lib.gguf_get_n_kv(ctx))}
        tensors = [(lib.gguf_get_tensor_name(ctx, i).decode("utf-8", "replace"),
                    int(lib.gguf_get_tensor_type(ctx, i)), int(lib.gguf_get_tensor_size(ctx, i)))
                   for i in range(lib.gguf_get_n_tensors(ctx))]
        lengths = {lib.gguf_get_key(ctx, i).decode("utf-8", "replace"): int(lib.gguf_get_arr_n(
            ctx, i)) for i in range(lib.gguf_get_n_kv(ctx))
            if lib.gguf_get_kv_type(ctx, i) == _GGUF_ARRAY}
    finally:
        lib.gguf_free(ctx)
    return GGUFHeader({k: v for k, v in metadata.items() if v is not None}, tensors, lengths)


def _gguf_value(lib: Any, ctx: int, i: int) -> Any:
    kind = lib.gguf_get_kv_type(ctx, i)
    if kind == _GGUF_STRING:
        return lib.gguf_get_val_str(ctx, i).decode("utf-8", "replace")
    if kind in _GGUF_SCALARS:
        return ctypes.cast(lib.gguf_get_val_data(ctx, i),
                           ctypes.POINTER(_GGUF_SCALARS[kind]))[0]
    if kind == _GGUF_ARRAY:
        item = _GGUF_SCALARS.get(lib.gguf_get_arr_type(ctx, i))
        n = lib.gguf_get_arr_n(ctx, i)
        if item is None or n > _GGUF_MAX_ARRAY:
            return None  # the vocabulary, its merges and token types: large, not needed
        data = ctypes.cast(lib.gguf_get_arr_data(ctx, i), ctypes.POINTER(item))
        return [data[j] for j in range(n)]
    return None


# ---------------------------------------------------------------------------- saved state


def state_size(llm: llama_cpp.Llama) -> int:
    """Bytes the KV cache (and recurrent state) of sequence 0 takes when saved."""
    return int(llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0))


def save_state(llm: llama_cpp.Llama, path: Path) -> bool:
    """Write the cached tokens and their KV cache (sequence 0) to `path` with llama.cpp's
    own writer, straight from the context to the file (no copy in Python's memory)."""
    tokens = cached_tokens(llm)
    array = (llama_cpp.llama_token * len(tokens))(*tokens)
    written = llama_cpp.llama_state_seq_save_file(llm._ctx.ctx, str(path).encode(), 0, array,
                                                  len(tokens))
    return written > 0


def load_state(llm: llama_cpp.Llama, path: Path) -> list[int] | None:
    """Replace the context's cache with a saved one; the tokens it holds, or None when
    llama.cpp refuses the file (another model's layout, a damaged file): the cache is then
    empty."""
    reset_cache(llm)
    capacity = llm.n_ctx()
    array = (llama_cpp.llama_token * capacity)()
    count = ctypes.c_size_t(0)
    read = llama_cpp.llama_state_seq_load_file(llm._ctx.ctx, str(path).encode(), 0, array,
                                               capacity, ctypes.byref(count))
    if read == 0 or count.value == 0 or count.value > capacity:
        reset_cache(llm)
        return None
    tokens = list(array[: count.value])
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    return tokens
