"""The importance matrix, as llama.cpp's `llama-imatrix` defines it, collected in-process.

For every weight matrix `blk.*` that multiplies activations (a MUL_MAT node of the graph
whose activation operand is F32 and has at least 16 rows), llama-imatrix adds, per input
column j, x[j]^2 over every row (token), and counts the rows. Quantization weighs each
column's rounding error by in_sum2[j] / count: columns that carry large activations keep
more precision. We collect exactly that through llama.cpp's eval callback while the F16
model reads calibration text, chunked as llama-imatrix chunks it (`chunks`).

Files: llama.cpp's GGUF-based imatrix (`general.type = imatrix`; per weight
`<name>.in_sum2` (n_mat x n_cols) and `<name>.counts` (n_mat); `imatrix.datasets`,
`imatrix.chunk_count`, `imatrix.chunk_size`) is read and written; the legacy `.dat`
(per entry: name, ncall, values already divided by the count and multiplied by ncall) is
read. Both are what `llama-imatrix -o` writes and `llama-quantize --imatrix` reads.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gguf
import numpy as np

from converters.errors import InputError
from converters.llama_eval import GGML_TYPE_F32, MUL_MAT, GraphTensor, read_f32, tensor_name

CHUNK_SIZE = 512  # llama-imatrix's default context: each chunk is evaluated on its own
MIN_ROWS = 16  # llama-imatrix ignores smaller batches (their statistics are too noisy)
_KV_DATASETS = "imatrix.datasets"
_KV_CHUNK_COUNT = "imatrix.chunk_count"
_KV_CHUNK_SIZE = "imatrix.chunk_size"
_SUMS, _COUNTS = ".in_sum2", ".counts"
# The node llama.cpp's graph builders name the final norm's output, just before the head.
FINAL_NORM = b"result_norm"


@dataclass
class ImportanceMatrix:
    """Per weight: sums of squared activations (n_mat rows of n_cols) and row counts."""

    sums: dict[str, np.ndarray] = field(default_factory=dict)  # float64 (n_mat, n_cols)
    counts: dict[str, np.ndarray] = field(default_factory=dict)  # float64 (n_mat,)
    datasets: list[str] = field(default_factory=list)
    chunk_count: int = 0
    chunk_size: int = CHUNK_SIZE

    def names(self) -> list[str]:
        return sorted(self.sums)

    def values(self, name: str) -> np.ndarray:
        """What quantization uses: the mean squared activation per column, flattened (a
        matrix that saw no rows gets 1). Computed as llama-quantize computes it from the
        file, in float32 from float32 sums, so that quantizing with a matrix in memory or
        with the file written from it gives the same bytes."""
        sums = self.sums[name].astype(np.float32)
        counts = self.counts[name].astype(np.float32)
        means = np.ones_like(sums)
        seen = counts > 0
        means[seen] = sums[seen] / counts[seen, None]
        return np.ascontiguousarray(means.reshape(-1))

    def summary(self) -> dict[str, Any]:
        """For the manifest."""
        tokens = max((int(c.max()) for c in self.counts.values()), default=0)
        return {"entries": len(self.sums), "chunks": self.chunk_count,
                "chunk_size": self.chunk_size, "tokens": tokens, "datasets": self.datasets}


# ---------------------------------------------------------------------------- collection


class Collector:
    """The eval callback that accumulates the statistics (see the module docstring).
    `active` off makes it ask for nothing: evaluation then runs at full speed."""

    def __init__(self) -> None:
        self.matrix = ImportanceMatrix()
        self.active = True

    def __call__(self, node: GraphTensor, ask: bool) -> bool:
        if ask:
            return self.active and (_wanted(node) or node.name == FINAL_NORM)
        if node.name == FINAL_NORM:
            # Stop the graph before the output head: calibration needs no logits, and the
            # head is a quarter of the work with Qwen3-0.6B's 151,936-token vocabulary.
            return False
        self._accumulate(node)
        return True

    def _accumulate(self, node: GraphTensor) -> None:
        weight, activations = node.src[0].contents, node.src[1].contents
        name = tensor_name(weight)
        x = read_f32(activations)  # (ne3, ne2, ne1, ne0)
        n_mat = int(weight.ne[2] * weight.ne[3])
        sums = self.matrix.sums.setdefault(name, np.zeros((n_mat, x.shape[-1])))
        counts = self.matrix.counts.setdefault(name, np.zeros(n_mat))
        if sums.shape != (n_mat, x.shape[-1]):
            raise InputError(f"{name}: activations of {x.shape[-1]} columns, earlier "
                             f"{sums.shape[1]}")
        # llama-imatrix's mapping of an activation slice (i3, i2) to a weight matrix; for
        # the 2-D weights of the supported models it is always matrix 0.
        for i3 in range(x.shape[0]):
            for i2 in range(x.shape[1]):
                mat = (i3 % int(weight.ne[3])) * int(weight.ne[2]) + i2 % int(weight.ne[2])
                sums[mat] += np.square(x[i3, i2], dtype=np.float64).sum(axis=0)
                counts[mat] += x.shape[2]


def _wanted(node: GraphTensor) -> bool:
    if node.op != MUL_MAT or not node.src[0] or not node.src[1]:
        return False
    weight, activations = node.src[0].contents, node.src[1].contents
    return (activations.type == GGML_TYPE_F32 and activations.ne[1] >= MIN_ROWS
            and tensor_name(weight).startswith("blk."))


def collect(run: Callable[[Sequence[int]], None], collector: Collector,
            token_chunks: Sequence[Sequence[int]], dataset: str,
            progress: Callable[[int], None] = lambda _n: None) -> ImportanceMatrix:
    """Evaluate each chunk (`run`, a Session's) with `collector` as its eval callback."""
    collector.active = True
    try:
        for chunk in token_chunks:
            run(chunk)
            collector.matrix.chunk_count += 1
            progress(1)
    finally:
        collector.active = False
    collector.matrix.datasets = [dataset]
    collector.matrix.chunk_size = len(token_chunks[0]) if token_chunks else CHUNK_SIZE
    return collector.matrix


# ---------------------------------------------------------------------------- files


def read_imatrix(path: Path) -> ImportanceMatrix:
    """An imatrix file of either format; InputError naming the file when it is neither."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise InputError(f"--imatrix {path}: cannot read it ({exc.strerror})") from exc
    try:
        matrix = _read_gguf(path) if magic == b"GGUF" else _read_legacy(path)
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise InputError(f"--imatrix {path}: not an importance matrix file ({exc})") from exc
    if not matrix.sums:
        raise InputError(f"--imatrix {path}: holds no entries")
    return matrix


def _read_gguf(path: Path) -> ImportanceMatrix:
    reader = gguf.GGUFReader(path)
    kind = reader.fields.get("general.type")
    if kind is None or kind.contents() != "imatrix":
        raise ValueError("a GGUF file, but general.type is not imatrix")
    matrix = ImportanceMatrix()
    datasets = reader.fields.get(_KV_DATASETS)
    matrix.datasets = list(datasets.contents()) if datasets is not None else []
    for key, target in ((_KV_CHUNK_COUNT, "chunk_count"), (_KV_CHUNK_SIZE, "chunk_size")):
        if key in reader.fields:
            setattr(matrix, target, int(reader.fields[key].contents()))
    tensors = {t.name: np.asarray(t.data, dtype=np.float64) for t in reader.tensors}
    for full_name, data in tensors.items():
        if not full_name.endswith(_SUMS):
            continue  # counts are read with their sums; newer files add .in_sum, ignored
        name = full_name.removesuffix(_SUMS)
        counts = tensors[name + _COUNTS].reshape(-1)
        matrix.sums[name] = data.reshape(len(counts), -1)
        matrix.counts[name] = counts
    return matrix


def _read_legacy(path: Path) -> ImportanceMatrix:
    """The .dat format: int32 n_entries; per entry int32 name length, name, int32 ncall,
    int32 n_values, float32 values (mean x ncall); then int32 last chunk and the dataset."""
    data = path.read_bytes()
    offset = 0

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal offset
        values = struct.unpack_from(fmt, data, offset)
        offset += struct.calcsize(fmt)
        return values

    (n_entries,) = take("<i")
    if not 0 < n_entries < 1_000_000:
        raise ValueError(f"{n_entries} entries")
    matrix = ImportanceMatrix()
    for _ in range(n_entries):
        (length,) = take("<i")
        name = data[offset:offset + length].decode("utf-8")
        offset += length
        ncall, n_values = take("<ii")
        if ncall <= 0 or n_values <= 0:
            raise ValueError(f"entry {name}: ncall {ncall}, {n_values} values")
        values = np.frombuffer(data, dtype="<f4", count=n_values, offset=offset)
        offset += 4 * n_values
        # Stored as mean x ncall, the chunk size unrecorded: rebuilt as llama-imatrix
        # rebuilds it, assuming its default chunk size, so that values() is the mean.
        matrix.sums[name] = values.astype(np.float64)[None, :] * CHUNK_SIZE
        matrix.counts[name] = np.array([float(ncall * CHUNK_SIZE)])
    if offset + 8 <= len(data):
        (matrix.chunk_count, length) = take("<ii")
        matrix.datasets = [data[offset:offset + length].decode("utf-8", "replace")]
    return matrix


def write_imatrix(matrix: ImportanceMatrix, path: Path) -> None:
    """Write the GGUF-based format (the file appears complete or not at all)."""
    partial = path.with_name(f".{path.name}.partial")
    writer = gguf.GGUFWriter(partial, arch="")
    # The writer adds general.architecture itself; an imatrix file has none.
    writer.kv_data[0].pop(gguf.Keys.General.ARCHITECTURE, None)
    try:
        writer.add_type("imatrix")
        writer.add_array(_KV_DATASETS, matrix.datasets)
        writer.add_uint32(_KV_CHUNK_COUNT, matrix.chunk_count)
        writer.add_uint32(_KV_CHUNK_SIZE, matrix.chunk_size)
        for name in matrix.names():
            writer.add_tensor(name + _SUMS, matrix.sums[name].astype(np.float32))
            writer.add_tensor(name + _COUNTS,
                              matrix.counts[name].astype(np.float32).reshape(-1, 1))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(partial, path)
