"""llama-cpp-python, the way Amicus uses it: quiet logs, clear load errors, classification.

llama.cpp writes its progress to stderr by default; we keep only errors, and keep the last
ones so a failed load can be reported in one line.
"""

from __future__ import annotations

import ctypes
import struct
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import llama_cpp

_GGUF_MAGIC = b"GGUF"
_GGML_LOG_LEVEL_ERROR = 3  # enum ggml_log_level (not exported by llama_cpp 0.3.36)
_recent_errors: deque[str] = deque(maxlen=8)


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    if level == _GGML_LOG_LEVEL_ERROR and text:
        _recent_errors.append(text.decode("utf-8", "replace").strip())


def quiet_llama_logs() -> None:
    """Route llama.cpp's log through us: errors are kept, the rest dropped."""
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def last_llama_error() -> str:
    return _recent_errors[-1] if _recent_errors else "no detail from llama.cpp"


def check_gguf_file(path: Path) -> None:
    """Refuse what llama.cpp would crash or fail obscurely on: missing, short, not GGUF."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8 or head[:4] != _GGUF_MAGIC:
        raise ValueError(f"{path}: not a GGUF file")
    (version,) = struct.unpack("<I", head[4:8])
    if version not in (2, 3):
        raise ValueError(f"{path}: unsupported GGUF version {version}")


def load_llama(path: Path, *, n_ctx: int = 512, classifier: bool = False,
               n_threads: int | None = None, n_gpu_layers: int = 0,
               f32_cache: bool = False) -> llama_cpp.Llama:
    """Load a GGUF; failures become one-line ValueErrors naming the file. `f32_cache`
    keeps the KV cache in F32 (exact comparisons) instead of llama.cpp's F16 default."""
    check_gguf_file(path)
    quiet_llama_logs()
    options: dict[str, object] = {"pooling_type": llama_cpp.LLAMA_POOLING_TYPE_RANK,
                                  "embedding": True} if classifier else {}
    if f32_cache:
        options.update(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                       flash_attn=False)
    try:
        return llama_cpp.Llama(str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False,
                               n_gpu_layers=n_gpu_layers, **options)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: llama.cpp cannot load it ({last_llama_error()})") from exc


def class_probabilities(llm: llama_cpp.Llama, tokens: Sequence[int]) -> list[float]:
    """The classifier head's output for one sequence: exactly n_cls_out probabilities.

    llama.cpp applies softmax for qwen3 classifiers. Llama.embed() would return n_embd floats
    of which only the first n_cls_out are written, so we read the pooled output ourselves.
    """
    n_out = llama_cpp.llama_model_n_cls_out(llm.model)
    if n_out <= 0:
        raise ValueError("model has no classifier head")
    if len(tokens) > llm.n_ctx():
        raise ValueError(f"{len(tokens)} tokens exceed the context of {llm.n_ctx()}")
    llm._ctx.kv_cache_clear()
    llm._batch.reset()
    llm._batch.add_sequence(list(tokens), 0, False)
    llm._ctx.decode(llm._batch)
    llm._batch.reset()
    pointer = llama_cpp.llama_get_embeddings_seq(llm._ctx.ctx, 0)
    if not pointer:
        raise ValueError("llama.cpp returned no pooled output (is pooling RANK?)")
    return [float(pointer[i]) for i in range(n_out)]


def class_labels(llm: llama_cpp.Llama) -> list[str]:
    n_out = llama_cpp.llama_model_n_cls_out(llm.model)
    labels = []
    for i in range(n_out):
        raw = llama_cpp.llama_model_cls_label(llm.model, i)
        labels.append(raw.decode("utf-8") if raw else f"LABEL_{i}")
    return labels
