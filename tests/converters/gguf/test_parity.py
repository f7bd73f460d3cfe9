"""Logit parity: the F32 GGUF run by llama.cpp computes what transformers computes on the
merged model (peft's merge_and_unload), for every generative architecture and the
classifier.

Tolerance: both sides compute in float32 from bit-identical weights, with the KV cache
kept in F32 on the llama.cpp side. What remains is summation order (BLAS vs ggml kernels)
and rope/exp implementations, a few ulps per op that grow through the layers; we allow
1e-3 absolute on logits whose spread is ~1 (a wrong transform, scale or norm moves them by
0.1 or more), and the arg-max must agree.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from converters.llama_runtime import class_probabilities, load_llama
from converters.pipeline import ConvertRequest, Progress, convert

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
llama_cpp = pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.reference

PROMPTS = ("The defendant was sentenced to", "被告人犯盗窃罪,判处", "台灣的選舉制度是")
ATOL = 1e-3


def _merged_reference(base, adapter, auto="AutoModelForCausalLM", cls=None):
    loader = getattr(transformers, cls or auto)
    model = loader.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.eval()


def _gguf(tmp_path, base, adapter, quant="F32"):
    adapters = (str(adapter),) if adapter else ()
    result = convert(ConvertRequest(base=str(base), adapters=adapters, name="m",
                                    out_dir=tmp_path, quant=quant), Progress(enabled=False))
    return result.outputs[0]


def _llama_logits(path, ids):
    llm = llama_cpp.Llama(str(path), n_ctx=128, verbose=False, logits_all=True,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32,
                          flash_attn=False)
    try:
        llm.eval(ids)
        return np.array(llm.scores[len(ids) - 1], dtype=np.float64)
    finally:
        llm.close()


CASES = {
    "qwen3": ("qwen3", "qwen3_lora", "AutoModelForCausalLM"),
    "qwen35": ("qwen35", "qwen35_lora", "Qwen3_5ForConditionalGeneration"),
    "llama": ("llama", None, "AutoModelForCausalLM"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_f32_gguf_logits_equal_transformers(tmp_path, sources, case):
    base_attr, adapter_attr, cls = CASES[case]
    base = getattr(sources, base_attr)
    adapter = getattr(sources, adapter_attr) if adapter_attr else None
    path = _gguf(tmp_path, base, adapter)
    model = _merged_reference(base, adapter, cls=cls)
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        with torch.no_grad():
            expected = model(input_ids=torch.tensor([ids])).logits[0, -1].double().numpy()
        actual = _llama_logits(path, ids)[: expected.shape[0]]
        diff = np.abs(actual - expected).max()
        print(f"{case} {prompt!r}: max |Δlogit| = {diff:.2e} (spread {expected.std():.2f})")
        assert diff < ATOL, (case, prompt, diff)
        assert actual.argmax() == expected.argmax()


def test_classifier_probabilities_equal_softmax_of_transformers(tmp_path, sources):
    path = _gguf(tmp_path, sources.classifier, sources.classifier_adapter)
    model = _merged_reference(sources.classifier, sources.classifier_adapter,
                              cls="AutoModelForSequenceClassification")
    tokenizer = transformers.AutoTokenizer.from_pretrained(sources.classifier)
    llm = load_llama(path, n_ctx=256, classifier=True, f32_cache=True)
    try:
        texts = ("任务描述:\n判断\n\nctx:\n[user] hello there", "[user] 你好", "[assistant] hi")
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                expected = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
            actual = class_probabilities(llm, ids)
            assert len(actual) == 2
            assert np.allclose(actual, expected.numpy(), atol=1e-4), (actual, expected)
    finally:
        llm.close()


def test_q4_k_m_stays_close_to_f16(tmp_path, sources, capsys):
    """Prints the KL divergence of Q4_K_M from F16 next-token distributions."""
    f16 = _gguf(tmp_path / "f16", sources.qwen3, sources.qwen3_lora, quant="F16")
    q4 = _gguf(tmp_path / "q4", sources.qwen3, sources.qwen3_lora, quant="Q4_K_M")
    tokenizer = transformers.AutoTokenizer.from_pretrained(sources.qwen3)
    kls = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        p, q = (_softmax(_llama_logits(path, ids)) for path in (f16, q4))
        kls.append(float(np.sum(p * (np.log(p) - np.log(q)))))
    with capsys.disabled():
        print(f"\nKL(F16 || Q4_K_M) per prompt: {[f'{k:.2e}' for k in kls]}")
    assert all(math.isfinite(k) and 0 <= k < 0.1 for k in kls)


def _softmax(logits):
    z = np.exp(logits - logits.max())
    return z / z.sum()
