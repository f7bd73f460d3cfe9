from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from converters.checkpoint.safetensors_io import (
    Checkpoint,
    SafetensorsFile,
    bf16_to_f32,
    f32_to_bf16,
    pending,
    write_checkpoint,
    write_safetensors,
)
from converters.errors import InputError

torch = pytest.importorskip("torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")
safetensors_torch = pytest.importorskip("safetensors.torch")


def _values(shape=(5, 7), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3


def test_bf16_rounding_matches_torch():
    x = np.concatenate([_values((1000,)), np.array([0.0, -0.0, 1e-40, 3.4e38, np.inf, -np.inf])])
    x = x.astype(np.float32)
    expected = torch.from_numpy(x).to(torch.bfloat16).view(torch.uint16).numpy()
    assert np.array_equal(f32_to_bf16(x), expected)
    assert np.isnan(bf16_to_f32(f32_to_bf16(np.array([np.nan], np.float32))))[0]


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_written_file_is_read_by_the_safetensors_library(tmp_path, dtype):
    a, b = _values(), _values((3,), seed=1)
    path = tmp_path / "x.safetensors"
    write_safetensors(path, [pending("a", a, dtype), pending("b.weight", b, dtype)])
    loaded = safetensors_torch.load_file(str(path))
    assert loaded["a"].dtype == {"F32": torch.float32, "F16": torch.float16,
                                 "BF16": torch.bfloat16}[dtype]
    expected = torch.from_numpy(a).to(loaded["a"].dtype).float().numpy()
    assert np.array_equal(loaded["a"].float().numpy(), expected)
    with SafetensorsFile(path) as f:
        assert np.array_equal(f.float32("a"), expected)
        assert f.tensors["b.weight"].shape == (3,)
        assert f.metadata == {"format": "pt"}


def test_reads_files_written_by_the_safetensors_library(tmp_path):
    tensors = {"w": torch.randn(4, 8, dtype=torch.bfloat16), "i": torch.arange(6)}
    path = tmp_path / "lib.safetensors"
    safetensors_torch.save_file(tensors, str(path))
    with SafetensorsFile(path) as f:
        assert np.array_equal(f.float32("w"), tensors["w"].float().numpy())
        assert np.array_equal(f.raw("i"), tensors["i"].numpy())


def test_sharded_checkpoint_round_trip(tmp_path):
    arrays = {f"layer.{i}.weight": _values((16, 16), seed=i) for i in range(5)}
    paths = write_checkpoint(tmp_path, [pending(k, v, "F32") for k, v in arrays.items()],
                             max_shard_bytes=2 * 16 * 16 * 4)
    assert len(paths) == 3
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] == 5 * 16 * 16 * 4
    assert set(index["weight_map"]) == set(arrays)
    with Checkpoint(tmp_path) as ckpt:
        assert sorted(ckpt.names()) == sorted(arrays)
        for name, value in arrays.items():
            assert np.array_equal(ckpt.float32(name), value)


def _raw_file(path, header: dict, data: bytes = b"", header_len: int | None = None):
    blob = json.dumps(header).encode()
    length = len(blob) if header_len is None else header_len
    path.write_bytes(struct.pack("<Q", length) + blob + data)
    return path


@pytest.mark.parametrize(
    ("header", "data", "header_len", "message"),
    [
        ({}, b"", 10**6, "beyond the file size"),
        ({"t": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, None,
         "unknown dtype"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, None,
         "beyond the file size"),
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, None,
         "overlap"),
        ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None,
         "needs 12"),
        ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, None,
         "invalid data_offsets"),
    ],
)
def test_corrupt_headers_are_refused_with_one_line(tmp_path, header, data, header_len, message):
    path = _raw_file(tmp_path / "bad.safetensors", header, data, header_len)
    with pytest.raises(InputError, match=message) as err:
        SafetensorsFile(path)
    assert "\n" not in str(err.value)
    assert "bad.safetensors" in str(err.value)


def test_truncated_and_non_json_files(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\1\2")
    with pytest.raises(InputError, match="truncated"):
        SafetensorsFile(short)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{]")
    with pytest.raises(InputError, match="not valid JSON"):
        SafetensorsFile(junk)


def test_pickled_checkpoints_are_refused_without_opening(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even opened")
    with pytest.raises(InputError, match="never unpickles"):
        Checkpoint(tmp_path)


def test_missing_shard_is_named(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    with pytest.raises(InputError, match=r"model-00001-of-00002\.safetensors"):
        Checkpoint(tmp_path)


def test_interrupted_write_leaves_no_file(tmp_path):
    def boom():
        raise KeyboardInterrupt

    from converters.checkpoint.safetensors_io import PendingTensor

    path = tmp_path / "x.safetensors"
    with pytest.raises(KeyboardInterrupt):
        write_safetensors(path, [PendingTensor("a", (2,), "F32", boom)])
    assert list(tmp_path.iterdir()) == []
