"""Whole-chunk evaluation with llama.cpp: what calibration and the quality report need.

A `Session` holds one model and one context. `evaluate` runs a chunk of tokens from an
empty cache with an output requested at every position, as llama-imatrix does: with only
the last token's output, llama.cpp computes the last layer's attention output and FFN for
that one row, and those weights would see no activations. A chunk is fed in batches of
`EVAL_BATCH` tokens (the cache carries over within the chunk, so every position sees the
same context as in one batch). A 512-token chunk is one batch: for the Qwen3-0.6B-shaped
Q4_K_M on a busy 2-core machine 1.8x faster than batches of 128 (3.3 s against 5.9 s; the
F16 takes as long either way, 5.2 s in a quiet moment), at the price of llama.cpp keeping
the logits of the whole batch twice (compute and output buffers), 311 MB each for Qwen's
151,936-token vocabulary: what collection, which needs one graph per chunk, already
holds. An optional eval callback (llama.cpp's `cb_eval`) is shown every graph node as it
is computed; `GraphTensor` mirrors `struct ggml_tensor` of the ggml that llama-cpp-python
0.3.36 vendors so that the callback can read a node's operands
(tests/converters/test_llama_eval.py checks the mirror against the vendored ggml.h).

This module and `llama_runtime` are the only ones that touch llama.cpp's internals: check
both when the llama-cpp-python pin moves.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType

import llama_cpp
import numpy as np
from llama_cpp import _internals
from llama_cpp._ggml import libggml

from converters.errors import InputError
from converters.llama_runtime import (
    GGUFLoadError,
    check_gguf_file,
    first_load_error,
    pooled_probabilities,
    quiet_llama_logs,
)

# ggml.h of the vendored ggml: GGML_MAX_DIMS 4, GGML_MAX_OP_PARAMS 64, GGML_MAX_SRC 10,
# GGML_MAX_NAME 64.
_MAX_DIMS, _MAX_OP_PARAMS, _MAX_SRC, _MAX_NAME = 4, 64, 10, 64
GGML_TYPE_F32 = 0
# Tokens per decode (and graph): llama-imatrix's micro-batch, so that a 512-token chunk is
# one graph (activations of another batching differ in the last digits).
EVAL_BATCH = 512
# llama.cpp waits at a barrier after every matrix product; a thread needs this much weight
# to work on before it pays for that wait (a demo model of a few MB runs 5x faster on one
# thread than on two of a busy 2-core machine: 0.07 s vs 0.38 s per 512-token chunk).
BYTES_PER_THREAD = 64 * 1024 * 1024


class GraphTensor(ctypes.Structure):
    """`struct ggml_tensor`, field for field (read only: llama.cpp owns the memory)."""


GraphTensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * _MAX_DIMS),
    ("nb", ctypes.c_size_t * _MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (_MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(GraphTensor) * _MAX_SRC),
    ("view_src", ctypes.POINTER(GraphTensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * _MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]

libggml.ggml_op_name.argtypes = [ctypes.c_int]
libggml.ggml_op_name.restype = ctypes.c_char_p
libggml.ggml_nbytes.argtypes = [ctypes.c_void_p]
libggml.ggml_nbytes.restype = ctypes.c_size_t
libggml.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
libggml.ggml_backend_buffer_is_host.restype = ctypes.c_bool
libggml.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                            ctypes.c_size_t]
libggml.ggml_backend_tensor_get.restype = None


def op_number(name: str) -> int:
    """The `enum ggml_op` value of an operation ("MUL_MAT"), asked of ggml itself rather
    than counted by hand: the enum grows between versions."""
    for value in range(256):
        if libggml.ggml_op_name(value) == name.encode():
            return value
    raise RuntimeError(f"this ggml has no operation {name}")


MUL_MAT = op_number("MUL_MAT")


def tensor_name(tensor: GraphTensor) -> str:
    """A weight's GGUF name: llama.cpp names copies of a weight `CPU#blk.0.attn_q.weight#0`
    (backend#name#copy); the part between the marks is the name llama-imatrix records."""
    name = tensor.name.decode("utf-8", "replace")
    if "#" in name:
        name = name.split("#")[1]
    return name


def read_f32(tensor: GraphTensor) -> np.ndarray:
    """An F32 tensor's values as a (ne3, ne2, ne1, ne0) array, copied out of device memory
    when the tensor is not in host memory."""
    nbytes = int(libggml.ggml_nbytes(ctypes.addressof(tensor)))
    if tensor.buffer and not libggml.ggml_backend_buffer_is_host(tensor.buffer):
        raw = np.empty(nbytes, dtype=np.uint8)
        libggml.ggml_backend_tensor_get(ctypes.addressof(tensor), raw.ctypes.data, 0, nbytes)
        flat = raw.view(np.float32)
    else:
        pointer = ctypes.cast(tensor.data, ctypes.POINTER(ctypes.c_float))
        flat = np.ctypeslib.as_array(pointer, shape=(nbytes // 4,))
    ne, nb = list(tensor.ne), list(tensor.nb)
    return np.lib.stride_tricks.as_strided(flat, shape=tuple(reversed(ne)),
                                           strides=tuple(reversed(nb)), writeable=False)


def default_threads(path: Path) -> int:
    """All CPUs for a large model, fewer for a small one (see BYTES_PER_THREAD)."""
    return max(1, min(os.cpu_count() or 1, path.stat().st_size // BYTES_PER_THREAD))


# The callback a Session calls: (node, ask) -> bool, as llama.cpp's cb_eval.
EvalCallback = Callable[[GraphTensor, bool], bool]


class Session:
    """One GGUF loaded on the CPU with one context of `n_ctx` tokens; a chunk of up to
    `n_ctx` tokens is evaluated from an empty cache. A classifier decodes each input in
    one batch (its pooled output is read once, after the last token)."""

    def __init__(self, path: Path, *, n_ctx: int, classifier: bool = False,
                 callback: EvalCallback | None = None, threads: int | None = None) -> None:
        check_gguf_file(path)
        quiet_llama_logs()
        self.path = path
        self.classifier = classifier
        self._callback = callback
        self._callback_error: BaseException | None = None
        model_params = llama_cpp.llama_model_default_params()
        model_params.n_gpu_layers = 0
        try:
            self._model = _internals.LlamaModel(path_model=str(path), params=model_params,
                                                verbose=False)
        except ValueError as exc:
            raise GGUFLoadError(f"{path}: llama.cpp cannot load it ({first_load_error()})") \
                from exc
        self._c_callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_node)
        self._ctx = _internals.LlamaContext(
            model=self._model, params=self._context_params(n_ctx, threads), verbose=False)
        self._batch = _internals.LlamaBatch(n_tokens=self._n_batch, embd=0, n_seq_max=1,
                                            verbose=False)
        self.n_ctx = n_ctx
        self.n_vocab = self._model.n_vocab()

    def _context_params(self, n_ctx: int, threads: int | None) -> llama_cpp.llama_context_params:
        params = llama_cpp.llama_context_default_params()
        # A classifier's input is one decode (in micro-batches of EVAL_BATCH).
        self._n_batch = n_ctx if self.classifier else min(n_ctx, EVAL_BATCH)
        params.n_ubatch = min(n_ctx, EVAL_BATCH)
        params.n_ctx, params.n_batch = n_ctx, self._n_batch
        params.n_threads = params.n_threads_batch = threads or default_threads(self.path)
        # Every operation stays on the CPU: the callback reads activations in host memory,
        # and llama.cpp would otherwise move large batches to a GPU where one is present.
        params.op_offload = False
        if self.classifier:
            params.embeddings = True
            params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_RANK
        if self._callback is not None:
            params.cb_eval = self._c_callback
        return params

    def _on_node(self, address: int, ask: bool, _user_data: ctypes.c_void_p) -> bool:
        """llama.cpp's callback: a Python exception cannot cross into C, so it is kept,
        the graph computation stopped, and the exception raised after the decode."""
        if self._callback is None or self._callback_error is not None:
            return False
        try:
            return self._callback(GraphTensor.from_address(address), ask)
        except BaseException as exc:  # re-raised in _decode
            self._callback_error = exc
            return False

    # ------------------------------------------------------------------ text
    @property
    def adds_bos(self) -> bool:
        return bool(self._model.add_bos_token())

    @property
    def bos(self) -> int:
        return int(self._model.token_bos())

    @property
    def eos(self) -> int:
        return int(self._model.token_eos())

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool) -> list[int]:
        """llama.cpp's tokenization (`add_special`: BOS where the vocabulary adds one;
        `parse_special`: `<|im_start|>` becomes its token, not text)."""
        return self._model.tokenize(text.encode("utf-8"), add_special, parse_special)

    def metadata(self, key: str) -> str | None:
        return self._model.metadata().get(key)

    def token_text(self, token: int) -> str:
        return self._model.token_get_text(token)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, tokens: Sequence[int]) -> Iterator[np.ndarray]:
        """Logits of every position of `tokens` (a chunk of at most n_ctx) evaluated from
        an empty cache, batch after batch: (n, n_vocab) views into llama.cpp's buffer,
        each valid until the next one is asked for."""
        for _ in self._decode(tokens, self._n_batch):
            pointer = llama_cpp.llama_get_logits(self._ctx.ctx)
            if not pointer:
                raise InputError(f"{self.path}: llama.cpp returned no logits")
            yield np.ctypeslib.as_array(pointer, shape=(self._batch.n_tokens(), self.n_vocab))

    def run(self, tokens: Sequence[int]) -> None:
        """Evaluate a chunk for its side effects (the eval callback), outputs ignored."""
        for _ in self._decode(tokens, self._n_batch):
            pass

    def use_adapter(self, path: Path | None, scale: float = 1.0) -> None:
        """Compute from now on with the llama.cpp LoRA adapter at `path` added `scale` times
        to the weights it names (None: without any). The adapter stays loaded until the
        model is closed."""
        if path is None:
            status = llama_cpp.llama_set_adapters_lora(self._ctx.ctx, None, 0, None)
        else:
            adapter = llama_cpp.llama_adapter_lora_init(self._model.model, str(path).encode())
            if not adapter:
                raise GGUFLoadError(f"{path}: llama.cpp cannot load it as a LoRA adapter of "
                                    f"{self.path.name} ({first_load_error()})")
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            status = llama_cpp.llama_set_adapters_lora(self._ctx.ctx, adapters, 1,
                                                       (ctypes.c_float * 1)(scale))
        if status != 0:
            raise InputError(f"{self.path}: llama.cpp could not set the adapter {path} "
                             f"(status {status})")

    def classify(self, tokens: Sequence[int]) -> list[float]:
        """The classifier head's probabilities for one sequence."""
        if len(tokens) > self.n_ctx:
            raise InputError(f"{len(tokens)} tokens exceed the context of {self.n_ctx}")
        return pooled_probabilities(self._model.model, self._ctx, self._batch, tokens)

    def _decode(self, tokens: Sequence[int], size: int) -> Iterator[int]:
        """Decode the chunk `size` tokens at a time; yields after each (the batch's first
        position)."""
        if not 0 < len(tokens) <= self.n_ctx:
            raise ValueError(f"a chunk holds 1 to {self.n_ctx} tokens, not {len(tokens)}")
        self._ctx.kv_cache_clear()
        for start in range(0, len(tokens), size):
            part = list(tokens[start:start + size])
            self._batch.set_batch(part, n_past=start, logits_all=True)
            status = llama_cpp.llama_decode(self._ctx.ctx, self._batch.batch)
            if self._callback_error is not None:
                error, self._callback_error = self._callback_error, None
                raise error
            if status != 0:
                raise InputError(f"{self.path}: llama.cpp could not evaluate {len(part)} "
                                 f"tokens (status {status})")
            yield start

    def close(self) -> None:
        self._batch.close()
        self._ctx.close()
        self._model.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
