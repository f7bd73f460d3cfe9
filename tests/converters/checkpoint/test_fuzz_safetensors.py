"""Fuzzing the safetensors reader: damaged headers (length, JSON, dtypes, shapes, offsets
past the end, overlapping ranges), damaged bytes and damaged sharded indexes are refused
with one line naming the file, or read; never another exception or a hang."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from converters.checkpoint.safetensors_io import (
    INDEX_NAME,
    Checkpoint,
    SafetensorsFile,
    pending,
    write_checkpoint,
    write_safetensors,
)
from converters.errors import InputError
from tests.tools.fuzzing import (
    dump_json,
    fuzz_settings,
    mutated_bytes,
    mutated_json,
    refused_or_read,
)

_TENSORS = [
    ("model.embed_tokens.weight", (8, 4), "BF16"),
    ("model.norm.weight", (4,), "F32"),
    ("lm_head.weight", (8, 4), "F16"),
    ("position_ids", (3,), "I64"),
]


def _real_file(path: Path) -> bytes:
    rng = np.random.default_rng(0)
    tensors = []
    for name, shape, dtype in _TENSORS:
        values = rng.integers(0, 9, shape) if dtype == "I64" else rng.standard_normal(shape)
        tensors.append(pending(name, values.astype(np.float32 if dtype != "I64" else np.int64),
                               dtype))
    write_safetensors(path, tensors)
    return path.read_bytes()


@pytest.fixture(scope="module")
def real_file(tmp_path_factory) -> bytes:
    return _real_file(tmp_path_factory.mktemp("st") / "model.safetensors")


def _split(blob: bytes) -> tuple[dict, bytes]:
    (length,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + length]), blob[8 + length:]


def _join(header: object, data: bytes, length: int | None = None) -> bytes:
    encoded = dump_json(header)
    return struct.pack("<Q", len(encoded) if length is None else length) + encoded + data


def _read_all(path: Path) -> None:
    with SafetensorsFile(path) as file:
        for name, info in file.tensors.items():
            if info.dtype in ("F32", "F16", "BF16", "F64"):
                assert np.asarray(file.float32(name)).shape == info.shape
                if info.shape:
                    file.float32_rows(name, 0, 1)
            else:
                assert file.raw(name).shape == info.shape


def _check(path: Path, blob: bytes) -> None:
    path.write_bytes(blob)
    refused_or_read(lambda: _read_all(path), names=path.name)


@fuzz_settings(150)
@given(data=st.data())
def test_damaged_headers_are_refused_or_read(tmp_path, real_file, data):
    header, block = _split(real_file)
    mutated = data.draw(mutated_json(header, focus=("dtype", "shape", "data_offsets",
                                                    "__metadata__")))
    _check(tmp_path / "model.safetensors", _join(mutated, block))


@fuzz_settings(100)
@given(data=st.data())
def test_damaged_bytes_are_refused_or_read(tmp_path, real_file, data):
    (length,) = struct.unpack("<Q", real_file[:8])
    blob = data.draw(mutated_bytes(real_file, hot=8 + length))
    _check(tmp_path / "model.safetensors", blob)


@fuzz_settings(40)
@given(length=st.one_of(st.sampled_from([0, 1, 2, 7, 8, 2**31, 2**63, 2**64 - 1]),
                        st.integers(0, 2**64 - 1)),
       tail=st.integers(0, 64))
def test_any_header_length_is_refused_or_read(tmp_path, real_file, length, tail):
    header, block = _split(real_file)
    _check(tmp_path / "model.safetensors", _join(header, block, length)[:8 + tail])


# ---------------------------------------------------------------------------- corpus


def _with(header: dict, name: str, **entry: object) -> dict:
    changed = json.loads(json.dumps(header))
    changed[name].update(entry)
    return changed


@pytest.mark.parametrize(("case", "expected"), [
    ("offsets past the end", "beyond the file size"),
    ("overlap", "overlap"),
    ("unknown dtype", "unknown dtype"),
    ("negative shape", "invalid shape"),
    ("shape does not match the span", "needs"),
    ("not an object", "not a JSON object"),
])
def test_corpus_of_damaged_headers(tmp_path, real_file, case, expected):
    header, block = _split(real_file)
    first, second = _TENSORS[0][0], _TENSORS[2][0]
    begin, end = header[second]["data_offsets"]
    changed = {
        "offsets past the end": lambda: _with(header, second, data_offsets=[begin, end + 10**6],
                                              shape=[8, 4 + 10**6 // 16]),
        "overlap": lambda: _with(header, first, data_offsets=[begin, begin + 64]),
        "unknown dtype": lambda: _with(header, first, dtype="F8_E4M3"),
        "negative shape": lambda: _with(header, first, shape=[-8, -4]),
        "shape does not match the span": lambda: _with(header, first, shape=[9, 4]),
        "not an object": lambda: [header],
    }[case]()
    path = tmp_path / "model.safetensors"
    path.write_bytes(_join(changed, block))
    with pytest.raises(InputError, match=expected) as raised:
        _read_all(path)
    assert "model.safetensors" in str(raised.value)


# ---------------------------------------------------------------------------- shards


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("sharded")
    rng = np.random.default_rng(1)
    tensors = [pending(f"model.layers.{i}.mlp.weight", rng.standard_normal((16, 16)).astype(
        np.float32), "BF16") for i in range(4)]
    write_checkpoint(directory, tensors, max_shard_bytes=1100)
    assert (directory / INDEX_NAME).is_file()
    return directory


def _read_checkpoint(directory: Path) -> None:
    with Checkpoint(directory) as checkpoint:
        for name in checkpoint.names():
            checkpoint.float32(name)


@fuzz_settings(80)
@given(data=st.data())
def test_damaged_shard_indexes_are_refused_or_read(tmp_path, sharded, data):
    directory = tmp_path / "ckpt"
    shutil.copytree(sharded, directory, dirs_exist_ok=True)
    index = json.loads((directory / INDEX_NAME).read_text())
    mutated = data.draw(mutated_json(index, focus=("weight_map",)))
    (directory / INDEX_NAME).write_bytes(dump_json(mutated))
    refused_or_read(lambda: _read_checkpoint(directory))


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/etc/hostname", "", "."])
def test_an_index_naming_files_outside_the_checkpoint_is_refused(tmp_path, sharded, shard):
    directory = tmp_path / "ckpt"
    shutil.copytree(sharded, directory)
    shutil.copy(next(directory.glob("model-00001-*.safetensors")),
                tmp_path / "outside.safetensors")
    index = json.loads((directory / INDEX_NAME).read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard
    (directory / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(InputError, match=INDEX_NAME):
        _read_checkpoint(directory)
