"""The synthetic checkpoints are real: transformers loads and runs every one of them, and
peft loads every adapter kind onto its base and merges it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from converters.checkpoint.safetensors_io import Checkpoint
from converters.synthetic import checkpoints as synthetic
from tests.converters.adapter_cases import ADAPTER_BASES, build_bases

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

pytestmark = pytest.mark.reference

TEXT = "The clinic opens at 9. 法院依法审理。法院依法審理。"


def _load(path, architecture):
    cls = getattr(transformers, architecture)
    model, info = cls.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    return model.eval(), info


def _ids(path, text=TEXT):
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    return tokenizer(text, return_tensors="pt")["input_ids"]


def _assert_weights_equal(model, path, skip=("mtp.",)):
    """Every tensor transformers holds is bit-for-bit what our reader sees in the files."""
    params = dict(model.state_dict())
    with Checkpoint(path) as ckpt:
        names = [n for n in ckpt.names() if not n.startswith(skip)]
        assert names
        for name in names:
            assert np.array_equal(params[name].numpy(), ckpt.float32(name)), name


BUILDERS = {
    "qwen3-tied-bf16": lambda out: synthetic.build_qwen3(out, tied=True, dtype="BF16"),
    "qwen3-untied-f16-sharded": lambda out: synthetic.build_qwen3(
        out, tied=False, dtype="F16", max_shard_bytes=400_000),
    "qwen35-bf16": lambda out: synthetic.build_qwen35(out),
    "qwen35-untied-f16-sharded": lambda out: synthetic.build_qwen35(
        out, tied=False, dtype="F16", max_shard_bytes=300_000),
    "llama-f16": lambda out: synthetic.build_llama(out),
    "llama-bf16-sharded": lambda out: synthetic.build_llama(out, dtype="BF16",
                                                            max_shard_bytes=500_000),
}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_transformers_loads_and_runs_the_causal_lm(tmp_path, kind):
    built = BUILDERS[kind](tmp_path / kind)
    model, info = _load(built.path, built.architecture)
    assert not info["missing_keys"]
    assert not info["mismatched_keys"]
    assert [k for k in info["unexpected_keys"] if not k.startswith("mtp.")] == []
    _assert_weights_equal(model, built.path)
    if "sharded" in kind:
        assert (built.path / "model.safetensors.index.json").is_file()
    ids = _ids(built.path)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], built.config.get("vocab_size")
                            or built.config["text_config"]["vocab_size"])
    assert torch.isfinite(logits).all()
    assert logits[0, -1].std() > 0.05  # weights are not degenerate: tokens are told apart
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 3


def test_tied_embeddings_really_are_tied(tmp_path):
    built = synthetic.build_qwen3(tmp_path / "m", tied=True)
    with Checkpoint(built.path) as ckpt:
        assert "lm_head.weight" not in ckpt
    model, _ = _load(built.path, built.architecture)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_qwen35_is_faithful_to_the_real_layout(tmp_path):
    built = synthetic.build_qwen35(tmp_path / "m")
    text = built.config["text_config"]
    assert text["linear_num_key_heads"] != text["linear_num_value_heads"]
    assert text["layer_types"] == ["linear_attention"] * 3 + ["full_attention"]
    with Checkpoint(built.path) as ckpt:
        names = ckpt.names()
        assert any(n.startswith("model.visual.") for n in names)
        assert any(n.startswith("mtp.") for n in names)
        assert all(n.startswith(("model.language_model.", "model.visual.", "mtp."))
                   for n in names)
        # As in the published checkpoint: A_log and the gated norm stay F32.
        assert ckpt.info("model.language_model.layers.0.linear_attn.A_log").dtype == "F32"
        assert ckpt.info("model.language_model.layers.0.linear_attn.norm.weight").dtype == "F32"
        assert ckpt.info("model.language_model.layers.0.linear_attn.in_proj_qkv.weight"
                         ).dtype == "BF16"
    _model, info = _load(built.path, built.architecture)
    assert not info["missing_keys"]


def test_classifier_runs_and_scores_two_labels(tmp_path):
    built = synthetic.build_qwen3_classifier(tmp_path / "clf")
    model, info = _load(built.path, "AutoModelForSequenceClassification")
    assert type(model).__name__ == "Qwen3ForSequenceClassification"
    assert not info["missing_keys"]
    assert model.config.id2label == {0: "non_unsafe", 1: "unsafe"}
    _assert_weights_equal(model, built.path)
    with torch.no_grad():
        logits = model(input_ids=_ids(built.path)).logits
    assert logits.shape == (1, 2)
    assert torch.isfinite(logits).all()


def test_builds_are_deterministic(tmp_path):
    digests = []
    for run in ("a", "b"):
        built = synthetic.build_qwen3(tmp_path / run, tied=False)
        digests.append({p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                        for p in sorted(built.path.iterdir())})
    assert digests[0] == digests[1]
    other = synthetic.build_qwen3(tmp_path / "c", tied=False, seed=7)
    assert (other.path / "model.safetensors").read_bytes() != (
        tmp_path / "a" / "model.safetensors").read_bytes()


# ---------------------------------------------------------------------------- adapters

@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return build_bases(tmp_path_factory.mktemp("bases"))


def _peft_config(spec: synthetic.AdapterSpec):
    return peft.LoraConfig(
        r=spec.r, lora_alpha=spec.lora_alpha, target_modules=list(spec.target_modules),
        use_rslora=spec.use_rslora, use_dora=spec.use_dora,
        rank_pattern=dict(spec.rank_pattern), alpha_pattern=dict(spec.alpha_pattern),
        modules_to_save=list(spec.modules_to_save) or None, task_type=spec.task_type,
    )


def _safetensors_shapes(path):
    with Checkpoint(path) as ckpt:
        return {name: ckpt.info(name).shape for name in ckpt.names()}


@pytest.mark.parametrize("kind", list(synthetic.ADAPTER_KINDS))
def test_adapter_has_the_keys_peft_itself_saves(tmp_path, bases, kind):
    base_name, auto = ADAPTER_BASES[kind]
    spec = synthetic.ADAPTER_KINDS[kind]
    ours = synthetic.build_adapter(tmp_path / "ours", bases[base_name], spec)
    model = getattr(transformers, auto).from_pretrained(bases[base_name], dtype=torch.float32)
    peft.get_peft_model(model, _peft_config(spec)).save_pretrained(tmp_path / "peft")
    assert _safetensors_shapes(ours) == _safetensors_shapes(tmp_path / "peft")
    theirs = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    mine = json.loads((ours / "adapter_config.json").read_text())
    for key in ("r", "lora_alpha", "use_rslora", "use_dora", "rank_pattern", "alpha_pattern",
                "task_type", "peft_type"):
        assert mine[key] == theirs[key], key
    assert set(mine["target_modules"]) == set(theirs["target_modules"])


@pytest.mark.parametrize("kind", list(synthetic.ADAPTER_KINDS))
def test_peft_loads_and_merges_every_adapter_kind(tmp_path, bases, kind):
    base_name, auto = ADAPTER_BASES[kind]
    adapter = synthetic.build_adapter(tmp_path / kind, bases[base_name],
                                      synthetic.ADAPTER_KINDS[kind])
    model = getattr(transformers, auto).from_pretrained(bases[base_name], dtype=torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loaded = peft.PeftModel.from_pretrained(model, adapter)
    state = loaded.state_dict()
    with Checkpoint(adapter) as ckpt:
        for name in ckpt.names():  # every saved tensor reached the model unchanged
            matches = [k for k in state if _peft_key(k) == name]
            assert len(matches) == 1, name
            assert np.array_equal(state[matches[0]].numpy(), ckpt.float32(name)), name
    merged = loaded.merge_and_unload()
    after = merged.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "merging changed nothing: A or B is zero"
    expected_modules = {m for m, _ in synthetic._adapter_targets(
        Checkpoint(bases[base_name]), synthetic.ADAPTER_KINDS[kind])}
    expected_modules |= set(synthetic.ADAPTER_KINDS[kind].modules_to_save)
    assert {k.removesuffix(".weight") for k in changed} == expected_modules
    ids = _ids(bases[base_name])
    with torch.no_grad():
        assert torch.isfinite(merged(input_ids=ids).logits).all()


def _peft_key(state_key: str) -> str:
    """peft's in-memory key -> the key it saves (drops the adapter name)."""
    key = state_key.replace(".default.weight", ".weight").replace(".default", "")
    key = key.replace("lora_magnitude_vector.weight", "lora_magnitude_vector")
    return key.replace(".modules_to_save.", ".")
