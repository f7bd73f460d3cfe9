"""Read and write safetensors files with numpy alone (no torch, bf16 included).

Reading is lazy: each file is memory-mapped once and a tensor is only touched when asked
for, so a checkpoint larger than RAM can be walked tensor by tensor. Every header is
validated before any data is used: a corrupt file is refused with one line naming it.

Format: 8-byte little-endian header length N, N bytes of JSON
`{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`,
then the data block; offsets are relative to the start of the data block.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converters.errors import InputError

# numpy dtype used to hold each safetensors dtype; BF16 is carried as raw uint16 bits.
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
FLOAT_DTYPES = ("F32", "F16", "BF16")
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
_PAGE = mmap.PAGESIZE


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bf16 bits (uint16) to float32: bf16 is the top half of an f32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """Narrow float32 to bf16 bits with round-to-nearest-even (as torch does)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    # NaN must stay NaN: rounding could carry a NaN payload into infinity.
    rounded = np.where(np.isnan(values), (bits >> 16) | 0x40, rounded)
    return rounded.astype(np.uint16)


def encode_floats(values: np.ndarray, dtype: str) -> np.ndarray:
    """Convert a float array to the on-disk representation of a safetensors dtype."""
    if dtype == "BF16":
        return f32_to_bf16(values)
    return np.ascontiguousarray(values, dtype=_NUMPY_DTYPES[dtype])


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: its dtype, shape and absolute byte range in its file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int
    path: Path

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsFile:
    """One validated, memory-mapped safetensors file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metadata, self.tensors = _read_header(self.path)
        self._file = open(self.path, "rb")  # noqa: SIM115 - lives as long as the map
        size = os.fstat(self._file.fileno()).st_size
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.close()

    def __enter__(self) -> SafetensorsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def raw(self, name: str) -> np.ndarray:
        """A read-only view of the tensor in its stored dtype (BF16 as uint16). No copy."""
        info = self.tensors[name]
        if self._map is None:
            raise ValueError(f"{self.path} is closed")
        dtype = _NUMPY_DTYPES[info.dtype]
        array = np.frombuffer(self._map, dtype=dtype, count=info.numel, offset=info.begin)
        return array.reshape(info.shape)

    def float32(self, name: str) -> np.ndarray:
        """A float32 copy of the tensor; the mapped pages it came from are released."""
        info = self.tensors[name]
        raw = self.raw(name)
        if info.dtype == "BF16":
            out = bf16_to_f32(raw)
        elif info.dtype in ("F32", "F16", "F64"):
            out = raw.astype(np.float32)
        else:
            raise InputError(f"{self.path.name}: tensor {name} has non-float dtype {info.dtype}")
        del raw
        self.release(name)
        return out

    def float32_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a tensor as float32; their mapped pages are released, so a
        huge tensor (an embedding) can be walked in bounded memory."""
        info = self.tensors[name]
        rows = self.raw(name)[start:stop]
        out = bf16_to_f32(rows) if info.dtype == "BF16" else rows.astype(np.float32)
        row_bytes = info.nbytes // max(1, info.shape[0]) if info.shape else info.nbytes
        del rows
        self._release_range(info.begin + start * row_bytes, info.begin + stop * row_bytes)
        return out

    def release(self, name: str) -> None:
        """Drop the tensor's pages from this process' resident set (they stay on disk)."""
        info = self.tensors[name]
        self._release_range(info.begin, info.end)

    def _release_range(self, begin: int, end: int) -> None:
        if self._map is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        begin = (begin // _PAGE) * _PAGE
        if end > begin:
            self._map.madvise(mmap.MADV_DONTNEED, begin, end - begin)


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, TensorInfo]]:
    """Parse and validate the header of a safetensors file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise InputError(f"{path.name}: truncated safetensors file ({size} bytes)")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
                raise InputError(
                    f"{path.name}: header length {header_len} is beyond the file size {size}"
                )
            header_bytes = handle.read(header_len)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path.name}: header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise InputError(f"{path.name}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise InputError(f"{path.name}: __metadata__ is not an object")
    data_start = 8 + header_len
    tensors = {
        name: _tensor_info(path, name, entry, data_start) for name, entry in header.items()
    }
    _check_layout(path, tensors, data_start, size)
    return {str(k): str(v) for k, v in metadata.items()}, tensors


def _tensor_info(path: Path, name: str, entry: object, data_start: int) -> TensorInfo:
    if not isinstance(entry, dict):
        raise InputError(f"{path.name}: tensor {name} has a malformed header entry")
    dtype = entry.get("dtype")
    if not isinstance(dtype, str) or dtype not in _NUMPY_DTYPES:
        raise InputError(f"{path.name}: tensor {name} has unknown dtype {dtype!r}")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise InputError(f"{path.name}: tensor {name} has an invalid shape {shape!r}")
    if not (
        isinstance(offsets, list)
        and len(offsets) == 2
        and all(_is_count(o) for o in offsets)
        and offsets[0] <= offsets[1]
    ):
        raise InputError(f"{path.name}: tensor {name} has invalid data_offsets {offsets!r}")
    expected = math.prod(shape) * _NUMPY_DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != expected:
        raise InputError(
            f"{path.name}: tensor {name} spans {offsets[1] - offsets[0]} bytes but "
            f"{dtype}{shape} needs {expected}"
        )
    return TensorInfo(
        name, dtype, tuple(shape), data_start + offsets[0], data_start + offsets[1], path
    )


def _is_count(value: object) -> bool:
    """A non-negative JSON integer (true/false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_layout(path: Path, tensors: Mapping[str, TensorInfo], data_start: int, size: int):
    """Offsets must stay inside the file and never overlap."""
    previous: TensorInfo | None = None
    for info in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if info.end > size:
            raise InputError(
                f"{path.name}: tensor {info.name} ends at byte {info.end}, beyond the file size "
                f"{size} (truncated file?)"
            )
        if previous is not None and info.begin < previous.end and info.nbytes:
            raise InputError(
                f"{path.name}: tensors {previous.name} and {info.name} overlap in the data block"
            )
        if info.nbytes:
            previous = info


class Checkpoint:
    """All safetensors files of one checkpoint directory, single-file or sharded."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.files = [SafetensorsFile(p) for p in _checkpoint_files(self.directory)]
        self._owner: dict[str, SafetensorsFile] = {}
        for file in self.files:
            for name in file.tensors:
                if name in self._owner:
                    raise InputError(
                        f"{self.directory.name}: tensor {name} appears in both "
                        f"{self._owner[name].path.name} and {file.path.name}"
                    )
                self._owner[name] = file

    def close(self) -> None:
        for file in self.files:
            file.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, name: object) -> bool:
        return name in self._owner

    def __len__(self) -> int:
        return len(self._owner)

    def names(self) -> list[str]:
        return list(self._owner)

    def info(self, name: str) -> TensorInfo:
        return self._owner[name].tensors[name]

    def raw(self, name: str) -> np.ndarray:
        return self._owner[name].raw(name)

    def float32(self, name: str) -> np.ndarray:
        return self._owner[name].float32(name)

    def float32_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        return self._owner[name].float32_rows(name, start, stop)


def _checkpoint_files(directory: Path) -> list[Path]:
    """The safetensors files of a checkpoint; pickled weights are refused, never opened."""
    index = directory / INDEX_NAME
    if index.is_file():
        shards = _index_shards(index)
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            raise InputError(f"{directory}: shard {missing[0]} named in {INDEX_NAME} is missing")
        return [directory / s for s in shards]
    files = sorted(directory.glob("*.safetensors"))
    if files:
        return files
    pickled = sorted(
        p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")
    ) if directory.is_dir() else []
    if pickled:
        raise InputError(
            f"{directory}: only pickled weights ({pickled[0]}); Amicus never unpickles files. "
            "Convert them to safetensors first (e.g. save_pretrained(safe_serialization=True))"
        )
    raise InputError(f"{directory}: no .safetensors weights found")


def _index_shards(index: Path) -> list[str]:
    """The shard files an index names: plain file names inside the checkpoint's folder
    (an index is outside data: it must not lead the reader anywhere else)."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{index}: not a valid safetensors index ({exc})") from exc
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(f"{index}: not a valid safetensors index (no weight_map object)")
    for tensor, shard in weight_map.items():
        if not (isinstance(shard, str) and shard == Path(shard).name
                and shard not in ("", ".", "..") and "\\" not in shard):
            raise InputError(f"{index}: tensor {tensor} names {shard!r}, not a shard file "
                             "beside the index")
    return sorted(set(weight_map.values()))


# ---------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class PendingTensor:
    """A tensor to be written: its name, shape, stored dtype, and how to produce it.

    `produce` is called once, when the tensor's turn comes, so writing a large checkpoint
    never holds more than one tensor in memory. It returns floats (converted to `dtype`)
    or an array already in the stored representation for integer dtypes.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    produce: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * _NUMPY_DTYPES[self.dtype].itemsize


def pending(name: str, array: np.ndarray, dtype: str) -> PendingTensor:
    """Wrap an array that is already in memory."""
    return PendingTensor(name, tuple(array.shape), dtype, lambda: array)


def write_safetensors(
    path: Path, tensors: Sequence[PendingTensor], metadata: Mapping[str, str] | None = None
) -> int:
    """Write one safetensors file atomically (temp file + rename). Returns its size."""
    header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
    offset = 0
    for tensor in tensors:
        header[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)  # data block 8-byte aligned
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as out:
            out.write(struct.pack("<Q", len(header_bytes)))
            out.write(header_bytes)
            for tensor in tensors:
                _write_data(out, tensor)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return 8 + len(header_bytes) + offset


def _write_data(out, tensor: PendingTensor) -> None:
    array = tensor.produce()
    if tuple(array.shape) != tensor.shape:
        raise ValueError(f"{tensor.name}: produced {array.shape}, declared {tensor.shape}")
    if tensor.dtype in FLOAT_DTYPES and array.dtype.kind == "f":
        array = encode_floats(array, tensor.dtype)
    else:
        array = np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[tensor.dtype])
    out.write(array.tobytes())


def write_checkpoint(
    directory: Path,
    tensors: Sequence[PendingTensor],
    *,
    max_shard_bytes: int | None = None,
    basename: str = "model",
) -> list[Path]:
    """Write tensors as `model.safetensors`, or shards plus an index when they exceed
    `max_shard_bytes` (the layout `save_pretrained` produces)."""
    directory.mkdir(parents=True, exist_ok=True)
    shards = list(_split_shards(tensors, max_shard_bytes))
    if len(shards) == 1:
        path = directory / f"{basename}.safetensors"
        write_safetensors(path, shards[0])
        return [path]
    paths: list[Path] = []
    weight_map: dict[str, str] = {}
    for number, shard in enumerate(shards, start=1):
        path = directory / f"{basename}-{number:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(path, shard)
        paths.append(path)
        weight_map.update({t.name: path.name for t in shard})
    index = {
        "metadata": {"total_size": sum(t.nbytes for t in tensors)},
        "weight_map": dict(sorted(weight_map.items())),
    }
    (directory / f"{basename}.safetensors.index.json").write_text(
        json.dumps(index, indent=2) + "\n", encoding="utf-8"
    )
    return paths


def _split_shards(
    tensors: Iterable[PendingTensor], max_bytes: int | None
) -> Iterator[list[PendingTensor]]:
    shard: list[PendingTensor] = []
    size = 0
    for tensor in tensors:
        if shard and max_bytes is not None and size + tensor.nbytes > max_bytes:
            yield shard
            shard, size = [], 0
        shard.append(tensor)
        size += tensor.nbytes
    yield shard
