"""converters.llama_eval: the ggml tensor mirror matches the vendored ggml.h, and a Session
evaluates whole chunks with every position's logits."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
from llama_cpp._ggml import libggml

from converters.errors import InputError
from converters.llama_eval import EVAL_BATCH, MUL_MAT, GraphTensor, Session, tensor_name
from converters.pipeline import ConvertRequest, Progress, convert

GGML_H = Path(llama_cpp.__file__).resolve().parents[1] / "include" / "ggml.h"


def _header() -> str:
    assert GGML_H.is_file(), f"llama-cpp-python ships ggml.h at {GGML_H}"
    return re.sub(r"//[^\n]*", "", GGML_H.read_text(encoding="utf-8"))


def _block(text: str, opening: str) -> str:
    start = text.index(opening) + len(opening)
    return text[start:text.index("};", start)]


def test_graph_tensor_mirrors_struct_ggml_tensor():
    header = _header()
    defines = dict(re.findall(r"#\s*define\s+(GGML_MAX_\w+)\s+(\d+)", header))
    fields = []
    for declaration in _block(header, "struct ggml_tensor {").split(";"):
        match = re.search(r"(\w+)\s*(?:\[([^\]]+)\])?\s*$", declaration.strip())
        if match:
            fields.append((match.group(1), match.group(2)))
    assert [name for name, _ in fields] == [name for name, _ in GraphTensor._fields_]
    for (name, size), (_, ctype) in zip(fields, GraphTensor._fields_, strict=True):
        if size is not None:
            expected = eval(size, {}, {k: int(v) for k, v in defines.items()}
                            | {"sizeof": lambda _t: 4, "int32_t": None})
            assert ctype._length_ == expected, name
    # ggml_tensor_overhead() is sizeof(struct ggml_object) (32 bytes) + sizeof(ggml_tensor).
    libggml.ggml_tensor_overhead.restype = ctypes.c_size_t
    assert ctypes.sizeof(GraphTensor) + 32 == libggml.ggml_tensor_overhead()


def test_mul_mat_is_the_enum_value_of_the_vendored_header():
    entries = [e.strip().split("=")[0].strip()
               for e in _block(_header(), "enum ggml_op {").split(",") if e.strip()]
    assert entries.index("GGML_OP_MUL_MAT") == MUL_MAT


def test_tensor_name_strips_backend_and_copy_marks():
    tensor = GraphTensor()
    tensor.name = b"CPU#blk.3.ffn_down.weight#0"
    assert tensor_name(tensor) == "blk.3.ffn_down.weight"
    tensor.name = b"blk.0.attn_q.weight"
    assert tensor_name(tensor) == "blk.0.attn_q.weight"


@pytest.fixture(scope="module")
def qwen3_f16(tmp_path_factory, sources) -> Path:
    out = tmp_path_factory.mktemp("eval")
    return convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=out, quant="F16",
                                  verify=False), Progress(enabled=False)).outputs[0]


def test_evaluate_gives_every_position_the_logits_llama_gives(qwen3_f16):
    tokens = [int(t) for t in np.random.default_rng(1).integers(0, 400, 64)]
    reference = llama_cpp.Llama(str(qwen3_f16), n_ctx=128, logits_all=True, verbose=False)
    try:
        reference.eval(tokens)
        expected = np.asarray(reference.scores[:len(tokens)])
    finally:
        reference.close()
    with Session(qwen3_f16, n_ctx=128, threads=1) as session:
        first = np.concatenate([b.copy() for b in session.evaluate(tokens)])
        # From an empty cache each time: the same numbers.
        again = np.concatenate([b.copy() for b in session.evaluate(tokens)])
        assert first.shape == (64, session.n_vocab)
        assert np.array_equal(first, again)
    # Llama runs attention without flash attention, the Session with llama.cpp's default
    # (flash attention on the CPU): the same logits up to F16-cache rounding.
    assert np.allclose(first, expected[:, :first.shape[1]], atol=1e-2)


def test_a_chunk_in_several_batches_keeps_its_context(qwen3_f16):
    """evaluate() feeds EVAL_BATCH tokens per decode, the cache carried over: exactly what
    llama.cpp computes for the same batching in one call."""
    n = 2 * EVAL_BATCH + 76
    tokens = [int(t) for t in np.random.default_rng(2).integers(0, 400, n)]
    with Session(qwen3_f16, n_ctx=n, threads=1) as session:
        batches = [b.copy() for b in session.evaluate(tokens)]
    assert [len(b) for b in batches] == [EVAL_BATCH, EVAL_BATCH, 76]
    reference = llama_cpp.Llama(str(qwen3_f16), n_ctx=n, n_batch=EVAL_BATCH,
                                n_ubatch=EVAL_BATCH, logits_all=True, flash_attn=True,
                                n_threads=1, verbose=False)
    try:
        reference.eval(tokens)
        expected = np.asarray(reference.scores[:len(tokens)])
    finally:
        reference.close()
    assert np.allclose(np.concatenate(batches), expected[:, :batches[0].shape[1]], atol=1e-5)


def test_callback_errors_surface_after_the_decode(qwen3_f16):
    def failing(node: GraphTensor, ask: bool) -> bool:
        if ask:
            return node.op == MUL_MAT
        raise RuntimeError("boom")

    with Session(qwen3_f16, n_ctx=64, callback=failing, threads=1) as session, \
            pytest.raises(RuntimeError, match="boom"):
        session.run(list(range(1, 33)))


def test_chunk_longer_than_the_context_is_refused(qwen3_f16):
    with Session(qwen3_f16, n_ctx=32, threads=1) as session, pytest.raises(ValueError):
        session.run(list(range(1, 40)))


def test_a_file_that_is_not_gguf_is_one_line(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="not a GGUF"):
        Session(bad, n_ctx=32)
