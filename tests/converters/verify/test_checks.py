"""Verification reads llama.cpp's real logits (Llama.scores is uninitialised memory unless
logits_all is on, which once made verification fail at random)."""

from __future__ import annotations

import llama_cpp
import numpy as np

from converters.llama_runtime import last_logits, load_llama
from converters.pipeline import ConvertRequest, Progress, convert


def test_last_logits_are_the_models_logits(tmp_path, sources):
    path = convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=tmp_path,
                                  quant="F16", verify=False), Progress(enabled=False)).outputs[0]
    llm = load_llama(path, n_ctx=128)
    reference = llama_cpp.Llama(str(path), n_ctx=128, logits_all=True, verbose=False)
    try:
        tokens = llm.tokenize(b"The court", add_bos=True, special=False)
        llm.eval(tokens)
        reference.eval(tokens)
        ours = last_logits(llm)
        expected = np.asarray(reference.scores[len(tokens) - 1])
        assert np.isfinite(ours).all()
        assert np.allclose(ours, expected, atol=1e-4)
    finally:
        llm.close()
        reference.close()
