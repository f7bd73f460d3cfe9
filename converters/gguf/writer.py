"""Write merged weights to a GGUF file, one tensor at a time.

The gguf package's writer asks each tensor for `.tofile()` only when its data is written,
so a `LazyTensor` merges, transforms and converts its tensor at that moment and drops it
right after: memory stays near one tensor whatever the size of the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import gguf
import numpy as np

from converters.checkpoint.config import ModelConfig
from converters.checkpoint.safetensors_io import f32_to_bf16
from converters.errors import InputError
from converters.gguf.architectures import Architecture, architecture_for
from converters.gguf.vocab import add_tokenizer
from converters.merge.merged_weights import MergedWeights

# Tensors larger than this (as float32) that no adapter changes are written in row blocks.
STREAM_BLOCK_BYTES = 32 * 1024 * 1024
# Output types of the unquantized GGUF: numpy dtype on disk, GGML type, llama file type.
OUTPUT_TYPES: dict[str, tuple[np.dtype, gguf.GGMLQuantizationType, gguf.LlamaFileType]] = {
    "F32": (np.dtype("<f4"), gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "F16": (np.dtype("<f2"), gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "BF16": (np.dtype("<u2"), gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16),
}


@dataclass(frozen=True)
class Provenance:
    """general.* metadata: what the model is called and where it came from."""

    name: str
    base_models: tuple[tuple[str, str | None], ...] = ()  # (repo id or path, revision)
    license: str | None = None
    finetune: str | None = None


class LazyTensor:
    """A tensor the GGUF writer pulls when its turn comes (gguf's add_tensor duck type).

    Its bytes are produced by `blocks()` in one or more row blocks, only then; `streamed`
    says there are several (a large tensor read a block at a time)."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype,
                 blocks: Callable[[], Iterator[np.ndarray]], streamed: bool,
                 on_written: Callable[[int], None], ahead: Prefetcher | None = None):
        self.shape = shape
        self.dtype = dtype
        self.nbytes = math.prod(shape) * dtype.itemsize
        self.blocks = blocks
        self.streamed = streamed
        self._on_written = on_written
        self._ahead = ahead
        self.index = ahead.register(self) if ahead is not None else -1

    def tofile(self, handle: BinaryIO) -> None:
        written = 0
        blocks = self._ahead.blocks_of(self) if self._ahead else self.blocks()
        for block in blocks:
            if block.dtype != self.dtype:
                raise RuntimeError(f"tensor block is {block.dtype}, declared {self.dtype}")
            # A file write, not numpy's tofile: a full disk then raises OSError(ENOSPC)
            # instead of "N requested and M written".
            handle.write(np.ascontiguousarray(block).data)
            written += block.nbytes
            self._on_written(block.nbytes)
        if written != self.nbytes:
            raise RuntimeError(f"tensor wrote {written} bytes, declared {self.nbytes}")

    def byteswap(self, inplace: bool = False) -> LazyTensor:  # big-endian hosts only
        raise NotImplementedError("Amicus writes little-endian GGUF on little-endian hosts")


class Prefetcher:
    """Computes the next whole tensor on a second thread while the current one is written
    (numpy releases the GIL: merging and converting overlap with disk writes). At most two
    tensors are in memory; streamed tensors are never computed ahead."""

    def __init__(self) -> None:
        self._order: list[LazyTensor] = []
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="amicus-merge")
        self._pending: dict[int, Future[list[np.ndarray]]] = {}

    def register(self, tensor: LazyTensor) -> int:
        """The tensor's place in the write order."""
        self._order.append(tensor)
        return len(self._order) - 1

    def blocks_of(self, tensor: LazyTensor) -> Iterable[np.ndarray]:
        future = self._pending.pop(tensor.index, None)
        following = tensor.index + 1
        if following < len(self._order) and not self._order[following].streamed:
            self._pending[following] = self._pool.submit(
                lambda: list(self._order[following].blocks()))
        return future.result() if future is not None else tensor.blocks()

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pool.shutdown(wait=True)


def write_gguf(
    path: Path,
    weights: MergedWeights,
    config: ModelConfig,
    tokenizer_dir: Path,
    config_dir: Path,
    out_type: str,
    provenance: Provenance,
    progress: Callable[[int], None] = lambda _n: None,
    on_total: Callable[[int], None] = lambda _n: None,
) -> int:
    """Write the whole model to `path` (the caller makes it atomic). Returns bytes of
    tensor data; `on_total` hears that figure before any data is written, `progress` the
    bytes of each block as it is written."""
    arch = architecture_for(config)
    writer = gguf.GGUFWriter(path, arch.gguf_arch)
    ahead = Prefetcher()
    try:
        embedding = _embedding_name(weights)
        arch.check_weights(weights.names(), weights.shape, embedding)
        _add_metadata(writer, arch, out_type, provenance)
        add_tokenizer(writer, tokenizer_dir, config_dir, arch.vocabulary,
                      weights.shape(embedding)[0])  # the (resized) embedding's rows, not config's
        total = _add_tensors(writer, weights, arch, out_type, progress, ahead)
        on_total(total)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except OSError as exc:
        if exc.filename is None:  # name the file: "No space left on device: <path>"
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        ahead.close()
        writer.close()
    weights.finish()
    return total


def _embedding_name(weights: MergedWeights) -> str:
    for name in weights.names():
        if name.endswith("embed_tokens.weight") and not name.startswith("mtp."):
            return name
    raise InputError("checkpoint has no token embedding (embed_tokens.weight)")


def _add_metadata(writer: gguf.GGUFWriter, arch: Architecture, out_type: str,
                  provenance: Provenance) -> None:
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(provenance.name)
    if provenance.finetune:
        writer.add_finetune(provenance.finetune)
    if provenance.license:
        writer.add_license(provenance.license)
    if provenance.base_models:
        writer.add_base_model_count(len(provenance.base_models))
        for i, (source, revision) in enumerate(provenance.base_models):
            writer.add_base_model_name(i, source)
            if "/" in source and not Path(source).exists():
                writer.add_base_model_repo_url(i, f"https://huggingface.co/{source}")
            if revision:
                writer.add_base_model_version(i, revision)
    writer.add_file_type(int(OUTPUT_TYPES[out_type][2]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    arch.add_hparams(writer)


def _add_tensors(writer: gguf.GGUFWriter, weights: MergedWeights, arch: Architecture,
                 out_type: str, progress: Callable[[int], None], ahead: Prefetcher) -> int:
    total = 0
    seen: dict[str, str] = {}
    for name in weights.names():
        if arch.dropped(name):
            continue
        gguf_name = arch.gguf_name(name)
        if gguf_name in seen:
            raise InputError(f"tensors {seen[gguf_name]} and {name} both map to {gguf_name}")
        seen[gguf_name] = name
        shape = arch.output_shape(name, weights.shape(name))
        f32 = arch.keeps_f32(gguf_name, len(shape))
        dtype, ggml_type, _ = OUTPUT_TYPES["F32" if f32 else out_type]
        blocks, streamed = _blocks(weights, arch, name, dtype)
        tensor = LazyTensor(shape, dtype, blocks, streamed, progress, ahead)
        # gguf's writer duck-types its tensors (shape, dtype, nbytes, tofile).
        writer.add_tensor(gguf_name, cast(np.ndarray, tensor), raw_dtype=ggml_type)
        total += tensor.nbytes
    return total


def _blocks(weights: MergedWeights, arch: Architecture, name: str,
            dtype: np.dtype) -> tuple[Callable[[], Iterator[np.ndarray]], bool]:
    """How a tensor's bytes are produced, and whether in row blocks. Large tensors nobody
    changes (embeddings, an untied head) stream in row blocks so memory stays near one
    block; the rest are merged and transformed whole (at most a few tens of MB)."""

    def whole() -> Iterator[np.ndarray]:
        yield _encode(arch.transform(name, weights.float32(name)), dtype, name)

    def in_rows() -> Iterator[np.ndarray]:
        shape = weights.shape(name)
        rows_per_block = max(1, STREAM_BLOCK_BYTES // (4 * max(1, math.prod(shape[1:]))))
        for start in range(0, shape[0], rows_per_block):
            stop = min(shape[0], start + rows_per_block)
            block = weights.float32_rows(name, start, stop)
            yield _encode(arch.transform(name, block), dtype, name)

    shape = weights.shape(name)
    big = math.prod(shape) * 4 > STREAM_BLOCK_BYTES and len(shape) >= 1
    if big and weights.untouched(name) and arch.row_local(name):
        return in_rows, True
    return whole, False


def _encode(values: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    if dtype == np.dtype("<u2"):
        return f32_to_bf16(values)
    out = np.ascontiguousarray(values, dtype=dtype)
    if dtype == np.dtype("<f2") and not np.isfinite(out).all() and np.isfinite(values).all():
        raise InputError(f"tensor {name} has values beyond the F16 range; use --quant BF16 "
                         "or F32")
    return out
