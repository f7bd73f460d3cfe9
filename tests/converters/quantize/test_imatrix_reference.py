"""The importance matrix collected through llama.cpp's eval callback equals an independent
computation: transformers forward hooks taking the mean squared input of every linear
layer, on the same synthetic model and the same 512-token chunks (each from an empty
cache, as llama-imatrix evaluates them), for Qwen3, Qwen3.5 (its linear-attention
projections included) and Llama.

Tolerance: llama.cpp computes with the F16 weights (bit-identical to the bf16 checkpoint),
rounds activations to F16 before each F16 matrix product and keeps an F16 KV cache;
transformers computes in float32. Column means of squared activations then agree to a
part in a thousand (measured: at most 8.3e-4); a wrong tensor, a missed row, a wrong
column order or another chunking is off by far more (a different chunking: 7-14%,
reference/imatrix.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from converters.checkpoint.config import read_model_config
from converters.gguf.architectures import architecture_for
from converters.llama_eval import Session
from converters.pipeline import ConvertRequest, Progress, convert
from converters.quantize.calibration import Formatter, chunks, load_set, set_calibration_text
from converters.quantize.imatrix import CHUNK_SIZE, Collector, collect

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.reference

CASES = {"qwen3": "AutoModelForCausalLM", "qwen35": "Qwen3_5ForConditionalGeneration",
         "llama": "AutoModelForCausalLM"}
RELATIVE_TOLERANCE = 5e-3


def _ours(path, text):
    collector = Collector()
    with Session(path, n_ctx=CHUNK_SIZE, callback=collector, threads=1) as session:
        tokens = session.tokenize(text.text, add_special=True, parse_special=True)
        token_chunks = chunks(tokens, CHUNK_SIZE, session.bos if session.adds_bos else None)[:2]
        return collect(session.run, collector, token_chunks, text.dataset), token_chunks


def _hooked(base, cls, token_chunks):
    """Sum of squared inputs and row count per nn.Linear, HF module name -> arrays."""
    model = getattr(transformers, cls).from_pretrained(base, dtype=torch.float32).eval()
    sums: dict[str, np.ndarray] = {}
    rows: dict[str, int] = {}

    def hook(name):
        def record(_module, inputs):
            x = inputs[0].detach().double().reshape(-1, inputs[0].shape[-1]).numpy()
            sums[name] = sums.get(name, 0) + np.square(x).sum(axis=0)
            rows[name] = rows.get(name, 0) + x.shape[0]
        return record

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and ".layers." in name:
            module.register_forward_pre_hook(hook(name))
    with torch.no_grad():
        for chunk in token_chunks:  # each chunk on its own, no cache carried over
            model(input_ids=torch.tensor([chunk]))
    return sums, rows


@pytest.mark.parametrize("case", list(CASES))
def test_collected_matrix_equals_transformers_hooks(tmp_path, sources, case):
    base = getattr(sources, case)
    f16 = convert(ConvertRequest(base=str(base), name="m", out_dir=tmp_path, quant="F16",
                                 verify=False), Progress(enabled=False)).outputs[0]
    text = set_calibration_text(load_set("general"), Formatter())
    matrix, token_chunks = _ours(f16, text)
    assert len(token_chunks) == 2 and matrix.chunk_count == 2
    sums, rows = _hooked(base, CASES[case], token_chunks)
    arch = architecture_for(read_model_config(base))
    expected = {}
    for name, total in sums.items():
        gguf_name = arch.gguf_name(name + ".weight")
        means = total / rows[name]
        if name.endswith("linear_attn.out_proj"):
            # The converter reorders V heads along out_proj's input axis (qwen35.py).
            means = arch.transform(name + ".weight", means[None, :])[0]
        expected[gguf_name] = means
    assert sorted(matrix.names()) == sorted(expected), "every linear layer, nothing else"
    if case == "qwen35":
        assert {"blk.0.attn_qkv.weight", "blk.0.attn_gate.weight", "blk.0.ssm_alpha.weight",
                "blk.0.ssm_beta.weight", "blk.0.ssm_out.weight"} <= set(expected)
    worst = 0.0
    for name in matrix.names():
        assert matrix.counts[name].tolist() == [2.0 * CHUNK_SIZE], name
        ours = matrix.values(name)
        error = float(np.abs(ours - expected[name]).max() / np.abs(expected[name]).max())
        worst = max(worst, error)
        assert error < RELATIVE_TOLERANCE, (name, error)
    print(f"{case}: {len(expected)} tensors, worst relative difference {worst:.2e}")
