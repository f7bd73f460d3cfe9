"""The importance matrix: llama-imatrix's chunking, collection through the eval callback,
llama.cpp's file formats (GGUF read and written, legacy .dat read), and quantization with
it."""

from __future__ import annotations

import struct

import gguf
import numpy as np
import pytest

from converters.errors import InputError
from converters.llama_eval import Session
from converters.pipeline import ConvertRequest, Progress, convert
from converters.quantize.calibration import chunks
from converters.quantize.imatrix import (
    CHUNK_SIZE,
    FINAL_NORM,
    Collector,
    ImportanceMatrix,
    collect,
    read_imatrix,
    write_imatrix,
)

QUIET = Progress(enabled=False)


def test_chunks_follow_llama_imatrix():
    tokens = list(range(10, 1110))  # 1100 tokens
    whole = chunks(tokens, 512, bos=1)
    assert [len(c) for c in whole] == [512, 512]  # the last 76 tokens are dropped
    assert whole[0][:2] == [1, 11] and whole[1][:2] == [1, 523]  # BOS replaces the first
    assert chunks(tokens, 512, bos=None)[1][0] == 522  # a vocabulary without BOS
    assert [len(c) for c in chunks(tokens, 512, bos=1, keep_tail=True)] == [512, 512, 76]


@pytest.fixture(scope="module")
def f16(tmp_path_factory, sources):
    out = tmp_path_factory.mktemp("imatrix")
    return convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=out, quant="F16",
                                  verify=False), QUIET).outputs[0]


@pytest.fixture(scope="module")
def matrix(f16) -> ImportanceMatrix:
    rng = np.random.default_rng(3)
    token_chunks = [[int(t) for t in rng.integers(0, 500, CHUNK_SIZE)] for _ in range(2)]
    collector = Collector()
    with Session(f16, n_ctx=CHUNK_SIZE, callback=collector, threads=1) as session:
        collected = collect(session.run, collector, token_chunks, "test-text")
        assert not collector.active  # evaluation after collection adds nothing
        session.evaluate(token_chunks[0])
    return collected


def test_collection_counts_every_row_of_every_block_weight(matrix):
    names = matrix.names()
    assert len(names) == 2 * 7  # q, k, v, output, gate, up, down in each of 2 layers
    assert all(n.startswith("blk.") for n in names)
    for name in names:
        assert matrix.counts[name].tolist() == [2.0 * CHUNK_SIZE]
        values = matrix.values(name)
        assert values.dtype == np.float32 and (values > 0).all()
    assert matrix.values("blk.0.ffn_down.weight").size == 512  # intermediate size
    assert matrix.summary() == {"entries": 14, "chunks": 2, "chunk_size": CHUNK_SIZE,
                                "tokens": 2 * CHUNK_SIZE, "datasets": ["test-text"]}


def test_collection_stops_before_the_output_head(f16):
    """From the first chunk on, llama.cpp stops after the final norm: the head's logits,
    which calibration does not use, are never computed (and never offered to the
    callback)."""
    collector = Collector()
    offered: list[bytes] = []

    def spy(node, ask):
        if ask:
            offered.append(node.name)
        return collector(node, ask)

    with Session(f16, n_ctx=CHUNK_SIZE, callback=spy, threads=1) as session:
        collect(session.run, collector, [list(range(1, 1 + CHUNK_SIZE))], "t")
    assert offered[-1] == FINAL_NORM and b"result_output" not in offered
    assert len(collector.matrix.names()) == 2 * 7  # every block weight still collected


def test_gguf_file_round_trip_in_llama_cpp_layout(tmp_path, matrix):
    path = tmp_path / "imatrix.gguf"
    write_imatrix(matrix, path)
    reader = gguf.GGUFReader(path)
    assert reader.fields["general.type"].contents() == "imatrix"
    assert "general.architecture" not in reader.fields
    assert reader.fields["imatrix.datasets"].contents() == ["test-text"]
    assert reader.fields["imatrix.chunk_count"].contents() == 2
    assert reader.fields["imatrix.chunk_size"].contents() == CHUNK_SIZE
    tensors = {t.name: t for t in reader.tensors}
    sums = tensors["blk.0.ffn_down.weight.in_sum2"]
    assert list(sums.shape) == [512, 1]  # ggml order: n_cols, n_mat
    assert list(tensors["blk.0.ffn_down.weight.counts"].shape) == [1, 1]
    back = read_imatrix(path)
    assert back.names() == matrix.names()
    assert (back.datasets, back.chunk_count, back.chunk_size) == (["test-text"], 2, CHUNK_SIZE)
    for name in matrix.names():
        assert np.array_equal(back.values(name), matrix.values(name))
        assert np.array_equal(back.counts[name], matrix.counts[name])
    assert not list(tmp_path.glob(".*partial"))


def _legacy(entries: dict[str, tuple[int, list[float]]], chunk_count: int, dataset: str) -> bytes:
    data = struct.pack("<i", len(entries))
    for name, (ncall, values) in entries.items():
        raw = name.encode()
        data += struct.pack("<i", len(raw)) + raw + struct.pack("<ii", ncall, len(values))
        data += np.asarray(values, dtype="<f4").tobytes()
    return data + struct.pack("<ii", chunk_count, len(dataset)) + dataset.encode()


def test_legacy_dat_gives_the_means_llama_quantize_reads(tmp_path):
    path = tmp_path / "imatrix.dat"
    # llama-imatrix stores mean x ncall; llama-quantize divides by ncall.
    path.write_bytes(_legacy({"blk.0.attn_q.weight": (4, [8.0, 2.0, 0.4]),
                              "blk.0.ffn_up.weight": (2, [1.0, 3.0])}, 4, "wiki.train.raw"))
    matrix = read_imatrix(path)
    assert matrix.names() == ["blk.0.attn_q.weight", "blk.0.ffn_up.weight"]
    assert np.allclose(matrix.values("blk.0.attn_q.weight"), [2.0, 0.5, 0.1])
    assert np.allclose(matrix.values("blk.0.ffn_up.weight"), [0.5, 1.5])
    assert (matrix.chunk_count, matrix.datasets) == (4, ["wiki.train.raw"])


@pytest.mark.parametrize("content, match", [
    (b"", "not an importance matrix"),
    (b"\x00" * 3, "not an importance matrix"),
    (struct.pack("<i", 3) + b"\x05\x00", "not an importance matrix"),
    (struct.pack("<i", 1) + struct.pack("<i", 1) + b"x" + struct.pack("<ii", 0, 1) + b"\0" * 4,
     "ncall 0"),
])
def test_bad_imatrix_files_are_one_line(tmp_path, content, match):
    path = tmp_path / "bad.dat"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match) as error:
        read_imatrix(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_model_gguf_is_not_an_imatrix(f16):
    with pytest.raises(InputError, match=r"general\.type is not imatrix"):
        read_imatrix(f16)


def _tensor_bytes(path):
    return {t.name: bytes(t.data.tobytes()) for t in gguf.GGUFReader(path).tensors}


def test_quantizing_with_the_written_file_equals_the_collected_matrix(tmp_path, sources):
    """--imatrix-out then --imatrix FILE: the same Q4_K_M tensors (what llama-quantize
    would produce from our file, since values() reads the file as it does)."""
    written = tmp_path / "m.imatrix.gguf"
    first = convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=tmp_path / "a",
                                   imatrix_out=written, quality=False), QUIET)
    assert first.manifest["calibration"]["imatrix"] == "collected"
    assert first.manifest["calibration"]["written_to"] == str(written)
    again = convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=tmp_path / "b",
                                   imatrix=str(written), quality=False), QUIET)
    assert again.manifest["calibration"]["imatrix"] == "file"
    assert again.manifest["calibration"]["file"] == str(written)
    assert _tensor_bytes(first.outputs[0]) == _tensor_bytes(again.outputs[0])
    off = convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=tmp_path / "c",
                                 imatrix="off", quality=False), QUIET)
    assert off.manifest["calibration"] == {"imatrix": "off", "reason": "--imatrix off"}
    differs = [n for n, data in _tensor_bytes(off.outputs[0]).items()
               if data != _tensor_bytes(first.outputs[0])[n]]
    assert any(".attn_q." in n for n in differs)
    metadata = gguf.GGUFReader(first.outputs[0]).fields
    assert metadata["quantize.imatrix.entries_count"].contents() == 14
    assert metadata["quantize.imatrix.dataset"].contents() == "amicus:general"


def test_an_imatrix_for_another_model_is_refused(tmp_path, sources):
    other = ImportanceMatrix(sums={"blk.0.attn_q.weight": np.ones((1, 7))},
                             counts={"blk.0.attn_q.weight": np.ones(1)}, datasets=["x"])
    path = tmp_path / "other.gguf"
    write_imatrix(other, path)
    with pytest.raises(InputError, match="imatrix size 7 is different"):
        convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=tmp_path / "o",
                               imatrix=str(path), quality=False), QUIET)
    assert not (tmp_path / "o" / "m.Q4_K_M.gguf").exists()
