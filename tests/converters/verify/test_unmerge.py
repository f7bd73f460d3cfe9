"""The unmerging adapter: the merged F16 with it attached at scale -1 computes what the
base written as F16 computes (for every family's reordering, stacked adapters of different
ranks and scales), adapters that are not plain low-rank products are declined, and the
pipeline uses it instead of writing the base."""

from __future__ import annotations

import numpy as np
import pytest

from converters.checkpoint.config import read_model_config
from converters.checkpoint.safetensors_io import Checkpoint
from converters.gguf.architectures import architecture_for
from converters.llama_eval import Session
from converters.llama_runtime import GGUFLoadError
from converters.merge.merged_weights import load_adapters
from converters.pipeline import BASE_UNMERGED, BASE_WRITTEN, ConvertRequest, Progress, convert
from converters.synthetic import checkpoints as synthetic
from converters.verify.unmerge import UNMERGE_SCALE, write_unmerging_adapter

QUIET = Progress(enabled=False)


def _f16(base, adapters, out):
    result = convert(ConvertRequest(base=str(base), adapters=tuple(str(a) for a in adapters),
                                    name="m", out_dir=out, quant="F16", verify=False), QUIET)
    return result.outputs[0]


def _unmerging_adapter(base, adapters, path):
    config = read_model_config(base)
    with Checkpoint(base) as checkpoint:
        loaded = load_adapters(checkpoint, adapters,
                               tie_word_embeddings=bool(config.get("tie_word_embeddings")))
        try:
            return write_unmerging_adapter(loaded, architecture_for(config), path)
        finally:
            for adapter in loaded:
                adapter.close()


def _logits(path, tokens, adapter=None):
    with Session(path, n_ctx=64, threads=1) as session:
        if adapter is not None:
            session.use_adapter(adapter, UNMERGE_SCALE)
        return np.concatenate([batch.copy() for batch in session.evaluate(tokens)])


# Qwen3.5's linear-attention projections too (their V heads are reordered in GGUF).
LINEAR_ATTENTION = synthetic.AdapterSpec(r=8, lora_alpha=16, target_modules=(
    *synthetic.ALL_LINEAR, "in_proj_qkv", "in_proj_z", "in_proj_a", "in_proj_b", "out_proj"))
# Llama's own output head (untied) too: llama.cpp adapts `output` as well.
WITH_HEAD = synthetic.AdapterSpec(r=8, lora_alpha=16,
                                  target_modules=(*synthetic.ALL_LINEAR, "lm_head"))
SPECS = {**synthetic.ADAPTER_KINDS, "linear_attention": LINEAR_ATTENTION,
         "with_head": WITH_HEAD}


@pytest.mark.parametrize("family, kinds", [("qwen3", ["rslora"]),
                                           ("qwen3", ["pattern", "lora"]),
                                           ("qwen35", ["linear_attention"]),
                                           ("llama", ["lora"]), ("llama", ["with_head"])])
def test_unmerged_model_computes_the_base(tmp_path, sources, family, kinds):
    base = getattr(sources, family)
    adapters = [synthetic.build_adapter(tmp_path / f"a{i}", base, SPECS[k], seed=i + 1)
                for i, k in enumerate(kinds)]
    merged = _f16(base, adapters, tmp_path / "merged")
    written_base = _f16(base, [], tmp_path / "base")
    assert _unmerging_adapter(base, adapters, tmp_path / "unmerge.gguf")
    tokens = [int(t) for t in np.random.default_rng(3).integers(3, 400, 48)]
    expected = _logits(written_base, tokens)
    fine_tuned = _logits(merged, tokens)
    unmerged = _logits(merged, tokens, tmp_path / "unmerge.gguf")
    effect = np.abs(fine_tuned - expected).max()
    error = np.abs(unmerged - expected).max()
    # The adapters moved the logits; taking them out lands on the base up to f16 rounding
    # of the merged weights (measured: 0.2-0.6% of the fine-tune's change).
    assert effect > 0.05, effect
    assert error < 0.02 * effect, (error, effect)


def test_changes_that_are_not_low_rank_products_are_declined(tmp_path, sources):
    for kind in ("dora", "embedding"):
        adapter = synthetic.build_adapter(tmp_path / kind, sources.qwen3,
                                          synthetic.ADAPTER_KINDS[kind])
        target = tmp_path / f"{kind}.gguf"
        assert not _unmerging_adapter(sources.qwen3, [adapter], target)
        assert not target.exists()


def test_a_lora_on_a_classifier_head_is_declined(tmp_path, sources):
    """llama.cpp multiplies a classifier's head (cls.output) without its LoRA path: an
    adapter naming it would load and change nothing (the base's figures would be the
    merged model's), so the base is written instead."""
    head = synthetic.AdapterSpec(r=8, lora_alpha=16,
                                 target_modules=(*synthetic.ALL_LINEAR, "score"),
                                 task_type="SEQ_CLS")
    adapter = synthetic.build_adapter(tmp_path / "head", sources.classifier, head)
    assert not _unmerging_adapter(sources.classifier, [adapter], tmp_path / "head.gguf")
    body = synthetic.AdapterSpec(r=8, lora_alpha=16, task_type="SEQ_CLS")
    adapter = synthetic.build_adapter(tmp_path / "body", sources.classifier, body)
    assert _unmerging_adapter(sources.classifier, [adapter], tmp_path / "body.gguf")


def test_pipeline_takes_the_adapters_out_instead_of_writing_the_base(tmp_path, sources):
    def quality(adapter_kind):
        adapter = synthetic.build_adapter(tmp_path / adapter_kind, sources.qwen3,
                                          synthetic.ADAPTER_KINDS[adapter_kind])
        manifest = convert(ConvertRequest(base=str(sources.qwen3), adapters=(str(adapter),),
                                          name="m", out_dir=tmp_path / f"out-{adapter_kind}"),
                           QUIET).manifest
        assert manifest["quality"]["base"]["kl_mean"] > 0
        assert sorted(p.name for p in (tmp_path / f"out-{adapter_kind}").iterdir()) == \
            ["m.Q4_K_M.gguf", "manifest.json"]  # no adapter or base left behind
        return manifest["quality"]["base_method"], manifest["timings"]

    method, timings = quality("lora")
    assert method == BASE_UNMERGED
    assert "quality_base" in timings and "quality_base_write" not in timings
    method, timings = quality("dora")
    assert method == f"{BASE_WRITTEN} (the adapters are not plain LoRA)"
    assert "quality_base_write" in timings and timings["quality_base"] < 1.0  # declined


def test_an_adapter_llama_cpp_refuses_falls_back_to_writing_the_base(tmp_path, sources,
                                                                       monkeypatch):
    def refuse(self, path, scale=1.0):
        raise GGUFLoadError(f"{path}: llama.cpp cannot load it as a LoRA adapter (test)")

    monkeypatch.setattr(Session, "use_adapter", refuse)
    manifest = convert(ConvertRequest(base=str(sources.qwen3), name="m", out_dir=tmp_path / "o",
                                      adapters=(str(sources.qwen3_lora),)), QUIET).manifest
    assert manifest["quality"]["base_method"] == f"{BASE_WRITTEN} (the unmerging adapter failed)"
    assert manifest["quality"]["base"]["kl_mean"] > 0
    assert "quality_base_write" in manifest["timings"]
