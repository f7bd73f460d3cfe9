"""How much memory a model needs at a given context size, read from its GGUF before loading.

    estimate = estimate_memory(path, n_ctx=16384)   # MemoryEstimate; .describe() for people
    check_memory(path, n_ctx=16384)                 # InsufficientMemoryError when it won't fit

What llama.cpp (the version llama-cpp-python 0.3.36 vendors, on the CPU) allocates, term by
term, each checked against its own log at several context sizes:
- weights: the file's tensors, memory-mapped and all read on the first token; on a CPU
  with REPACK the Q4_0/Q4_K/IQ4_NL matrices are also copied into an interleaved layout
  (anonymous memory: those bytes count twice, 0.55 of a Q4_K_M file);
- KV cache: n_ctx cells (rounded up to 256) x every layer that attends, each holding
  head_count_kv x (key_length + value_length) values at the cache type (F16: 2 bytes).
  Qwen3.5 attends in one layer of `full_attention_interval` (the rest are linear
  attention), so only those layers hold a KV cache; the linear-attention layers keep a
  recurrent state instead, in F32 and independent of n_ctx: a convolution state of
  (conv_kernel - 1) x (inner_size + 2 x group_count x state_size) values and a delta-rule
  state of state_size x inner_size values per layer;
- compute buffer: the larger of the attention scores for a 512-token batch over the whole
  context (n_ctx x 512 x (heads + 1 for the mask) floats, plus the feed-forward
  activations) and the logits of a 512-token batch (512 x vocabulary floats): llama.cpp
  reserves the worst case up front, flash attention being off;
- overhead: the interpreter, the libraries and the vocabulary's tables.
The compute buffer is reserved whole but only touched as the context fills, so a process
that has read 3,000 tokens of a 32,768-token context is resident below the estimate by up
to the untouched part; `estimate_memory(..., filled=N)` gives that figure too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.engine.errors import EngineError
from converters.llama_runtime import GGUFHeader, read_gguf_header, system_info

GB = 1024**3
MB = 1024**2
KV_CELL_PAD = 256  # llama.cpp rounds the KV cache up to this many cells
UBATCH = 512  # llama.cpp's default micro-batch (n_ubatch), which Amicus keeps
_FLOAT = 4
_CACHE_BYTES = {"f16": 2.0, "bf16": 2.0, "f32": 4.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# ggml types the CPU backend repacks (Q4_0, Q4_K, IQ4_NL); the embedding is looked up by
# row (get_rows), never repacked.
_REPACKED_TYPES = {2, 12, 20}
_RUNTIME_BYTES = 48 * MB  # Python, numpy, llama.cpp's libraries, measured at start
_VOCAB_BYTES_PER_TOKEN = 200  # llama.cpp's token tables and piece cache


class InsufficientMemoryError(EngineError):
    """The model at the chosen context would not fit the memory available now."""

    title = "Not enough memory for this context"


class ContextSizeError(EngineError):
    """num_ctx outside what the model was trained for (or not a size at all)."""

    title = "The context size is not possible for this model"


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a GGUF's header."""

    architecture: str
    trained_context: int
    n_layer: int
    n_head: int
    n_ff: int
    n_vocab: int
    kv_values_per_token: int  # keys and values over every layer that holds a KV cache
    kv_layers: int
    recurrent_bytes: int  # the linear-attention layers' state (F32), whatever n_ctx
    weights_bytes: int
    repackable_bytes: int

    @classmethod
    def of(cls, path: Path | str) -> ModelShape:
        return shape_from_header(read_gguf_header(Path(path)))


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per part; `total` is what must be free to load and fill the context."""

    n_ctx: int
    weights: int
    repacked: int
    kv_cache: int
    recurrent: int
    compute: int
    overhead: int

    @property
    def total(self) -> int:
        return (self.weights + self.repacked + self.kv_cache + self.recurrent + self.compute
                + self.overhead)

    def describe(self) -> str:
        """One line for people: "about 2.9 GB at 16,384 tokens (weights 0.6 GB, KV cache
        1.8 GB, working memory 0.5 GB)"."""
        parts = [f"weights {_gb(self.weights + self.repacked)}",
                 f"KV cache {_gb(self.kv_cache)}"]
        if self.recurrent:
            parts.append(f"recurrent state {_gb(self.recurrent)}")
        parts.append(f"working memory {_gb(self.compute + self.overhead)}")
        return f"about {_gb(self.total)} at {self.n_ctx:,} tokens ({', '.join(parts)})"


def _gb(n: int) -> str:
    return f"{n / GB:.1f} GB" if n >= 0.1 * GB else f"{n / MB:.0f} MB"


def _layer_list(value: object, n_layer: int, default: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value][:n_layer]
    return [int(value) if isinstance(value, int | float) else default] * n_layer


def _recurrent_layers(meta: dict[str, object], arch: str, n_layer: int) -> list[bool]:
    flags = meta.get(f"{arch}.attention.recurrent_layers")
    if isinstance(flags, list):
        return [bool(f) for f in flags][:n_layer]
    interval = meta.get(f"{arch}.full_attention_interval")
    if isinstance(interval, int) and interval > 0:
        return [(i + 1) % interval != 0 for i in range(n_layer)]
    return [False] * n_layer


def shape_from_header(header: GGUFHeader) -> ModelShape:
    meta = header.metadata
    arch = str(meta.get("general.architecture", ""))

    def number(key: str, default: int = 0) -> int:
        value = meta.get(f"{arch}.{key}", default)
        return int(value) if isinstance(value, int | float) else default

    n_layer, n_embd = number("block_count"), number("embedding_length")
    n_head = number("attention.head_count", 1) or 1
    head_k = number("attention.key_length") or n_embd // n_head
    head_v = number("attention.value_length") or n_embd // n_head
    heads_kv = _layer_list(meta.get(f"{arch}.attention.head_count_kv"), n_layer, n_head)
    recurrent = _recurrent_layers(meta, arch, n_layer)
    kv = [h for h, r in zip(heads_kv, recurrent, strict=False) if not r and h > 0]
    conv, state = number("ssm.conv_kernel"), number("ssm.state_size")
    inner, groups = number("ssm.inner_size"), number("ssm.group_count")
    per_layer_state = (max(conv - 1, 0) * (inner + 2 * groups * state) + state * inner) * _FLOAT
    vocab = header.lengths.get("tokenizer.ggml.tokens") or number("vocab_size")
    return ModelShape(
        architecture=arch, trained_context=number("context_length"), n_layer=n_layer,
        n_head=n_head, n_ff=number("feed_forward_length"), n_vocab=vocab,
        kv_values_per_token=sum(h * (head_k + head_v) for h in kv), kv_layers=len(kv),
        recurrent_bytes=per_layer_state * sum(recurrent),
        weights_bytes=sum(size for _, _, size in header.tensors),
        repackable_bytes=sum(size for name, kind, size in header.tensors
                             if kind in _REPACKED_TYPES and name != "token_embd.weight"))


def _repacks() -> bool:
    return "REPACK = 1" in system_info()


def estimate_for_shape(shape: ModelShape, n_ctx: int, *, cache_type: str = "f16",
                       filled: int | None = None) -> MemoryEstimate:
    """The estimate for a context of `n_ctx` tokens; `filled`: as resident after reading
    that many tokens (the compute buffer touched only that far)."""
    cells = -(-n_ctx // KV_CELL_PAD) * KV_CELL_PAD
    attended = cells if filled is None else min(cells, -(-filled // KV_CELL_PAD) * KV_CELL_PAD)
    ffn = UBATCH * shape.n_ff * _FLOAT
    attention = attended * UBATCH * (shape.n_head + 1) * _FLOAT + 3 * ffn
    logits = UBATCH * shape.n_vocab * _FLOAT + ffn
    return MemoryEstimate(
        n_ctx=n_ctx, weights=shape.weights_bytes,
        repacked=shape.repackable_bytes if _repacks() else 0,
        kv_cache=int(cells * shape.kv_values_per_token * _CACHE_BYTES[cache_type]),
        recurrent=shape.recurrent_bytes,
        compute=attention if filled is not None else max(attention, logits),
        overhead=_RUNTIME_BYTES + _VOCAB_BYTES_PER_TOKEN * shape.n_vocab)


def estimate_memory(path: Path | str, n_ctx: int, *, cache_type: str = "f16",
                    filled: int | None = None) -> MemoryEstimate:
    """What loading `path` with a context of `n_ctx` tokens takes (see the module)."""
    return estimate_for_shape(ModelShape.of(path), n_ctx, cache_type=cache_type, filled=filled)


def available_memory() -> int:
    """Bytes the system can give a new allocation now without swapping (psutil's
    `available`: free memory plus caches the kernel can drop)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_context(path: Path | str, n_ctx: int, shape: ModelShape | None = None) -> ModelShape:
    """Refuse a num_ctx the model was not trained for; returns the shape read."""
    shape = shape or ModelShape.of(path)
    if n_ctx < 1:
        raise ContextSizeError(f"num_ctx must be a positive number of tokens, not {n_ctx}")
    if shape.trained_context and n_ctx > shape.trained_context:
        raise ContextSizeError(
            f"{Path(path).name}: num_ctx {n_ctx:,} is more than the {shape.trained_context:,} "
            "tokens the model was trained for; choose at most that")
    return shape


def check_memory(path: Path | str, n_ctx: int, *, available: int | None = None,
                 cache_type: str = "f16", shape: ModelShape | None = None) -> MemoryEstimate:
    """The estimate, after checking num_ctx against the trained context and the estimate
    against `available` bytes (default: what the system has free now)."""
    shape = check_context(path, n_ctx, shape)
    estimate = estimate_for_shape(shape, n_ctx, cache_type=cache_type)
    free = available_memory() if available is None else available
    if estimate.total > free:
        raise InsufficientMemoryError(
            f"{Path(path).name} with num_ctx {n_ctx:,} needs {estimate.describe()}, but "
            f"{_gb(free)} is available; choose a smaller num_ctx or close other programs")
    return estimate
