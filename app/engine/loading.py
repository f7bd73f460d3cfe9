"""Opening a GGUF: every failure becomes a one-line ModelLoadError, never a crash."""

from __future__ import annotations

from pathlib import Path

import llama_cpp

from app.engine.errors import ModelLoadError
from converters.llama_runtime import load_llama


def load_model(path: Path | str, *, n_ctx: int, n_gpu_layers: int, threads: int,
               classifier: bool = False, f32_cache: bool = False) -> llama_cpp.Llama:
    """Missing file, truncated file, not a GGUF, or refused by llama.cpp (with its reason:
    "tensor 'blk.0.ffn_gate.weight' data is not within the file bounds...")."""
    try:
        return load_llama(Path(path), n_ctx=n_ctx, classifier=classifier, n_threads=threads,
                          n_gpu_layers=n_gpu_layers, f32_cache=f32_cache)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(str(exc)) from exc
