"""Opening a GGUF: every failure becomes a one-line ModelLoadError, never a crash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import llama_cpp

from app.engine.backend import resolve_gpu_layers
from app.engine.errors import ModelLoadError
from app.engine.memory import MemoryEstimate, ModelShape, check_memory, estimate_for_shape
from app.engine.threads import ThreadPolicy
from converters.errors import InputError
from converters.llama_runtime import load_llama


@dataclass(frozen=True)
class OpenedModel:
    """A loaded model with the thread policy and GPU layers it was loaded with."""

    llm: llama_cpp.Llama
    policy: ThreadPolicy
    gpu_layers: int
    shape: ModelShape
    memory: MemoryEstimate  # what this context was estimated to take (CPU)


def open_model(path: Path | str, *, n_ctx: int, n_gpu_layers: int | None,
               n_threads: int | None, classifier: bool = False,
               f32_cache: bool = False, available_memory: int | None = None) -> OpenedModel:
    """What the chat engine and the classifier both do to load: `n_gpu_layers` None means
    every layer on the GPU when the build can offload; `n_threads` None, the adaptive
    policy (its first choice is the physical core count).

    Before llama.cpp allocates anything, num_ctx is checked against the trained context
    and, when the model runs on the CPU, the memory estimate against `available_memory`
    (default: what the system has free now): ContextSizeError, InsufficientMemoryError.
    With GPU offload the weights and cache go to the GPU, whose memory llama.cpp checks."""
    try:
        shape = ModelShape.of(path)
    except (OSError, InputError) as exc:
        raise ModelLoadError(str(exc)) from exc
    cache_type = "f32" if f32_cache else "f16"
    gpu_layers = resolve_gpu_layers(n_gpu_layers)
    if gpu_layers == 0:
        memory = check_memory(path, n_ctx, available=available_memory, cache_type=cache_type,
                              shape=shape)
    else:
        memory = estimate_for_shape(shape, n_ctx, cache_type=cache_type)
    policy = ThreadPolicy(n_threads)
    policy.warm_up()
    llm = load_model(path, n_ctx=n_ctx, n_gpu_layers=gpu_layers,
                     threads=n_threads or policy.cores, classifier=classifier,
                     f32_cache=f32_cache)
    return OpenedModel(llm, policy, gpu_layers, shape, memory)


def load_model(path: Path | str, *, n_ctx: int, n_gpu_layers: int, threads: int,
               classifier: bool = False, f32_cache: bool = False) -> llama_cpp.Llama:
    """Missing file, truncated file, not a GGUF, or refused by llama.cpp (with its reason:
    "tensor 'blk.0.ffn_gate.weight' data is not within the file bounds...")."""
    try:
        return load_llama(Path(path), n_ctx=n_ctx, classifier=classifier, n_threads=threads,
                          n_gpu_layers=n_gpu_layers, f32_cache=f32_cache)
    except (OSError, InputError) as exc:
        raise ModelLoadError(str(exc)) from exc
