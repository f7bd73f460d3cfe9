"""Our numpy merge equals peft's, tensor by tensor; every refusal is one clear line.

Reference tests (marked `reference`) compare with peft 0.21.2's merge_and_unload on a model
loaded in float32. Tolerance atol 1e-6 / rtol 1e-5: both sides compute the same float32
expression, W + (B @ A) * s, but numpy's and torch's BLAS may sum the r products of the
matmul (and DoRA's row norms) in a different order. With |B @ A| * s < 1 that reordering
moves a result by a few float32 ulps (~1e-7); any real error (a wrong scale, a missed
transpose, a norm over the wrong axis) is orders of magnitude larger. Tensors an adapter
does not touch must be bit-identical.

Tied embeddings: peft merges a LoRA on lm_head in place into the tensor lm_head shares with
embed_tokens, so its merged model has changed input embeddings too. We untie instead (the
head gets the delta, the embeddings stay), which is what the adapter computed in training;
the tests check that our merged model reproduces the unmerged PeftModel's logits while
peft's merged model does not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from converters.checkpoint.safetensors_io import (
    Checkpoint,
    SafetensorsFile,
    pending,
    write_safetensors,
)
from converters.errors import InputError
from converters.merge.adapter import load_adapter
from converters.merge.adapter_config import AdapterConfig, pattern_rule, rank_and_alpha
from converters.merge.merged_weights import MergedWeights, load_adapters
from converters.synthetic import checkpoints as synthetic
from tests.converters.adapter_cases import ADAPTER_BASES, build_bases

reference = pytest.mark.reference
ATOL, RTOL = 1e-6, 1e-5

@pytest.fixture(scope="module")
def bases(tmp_path_factory) -> dict[str, Path]:
    return build_bases(tmp_path_factory.mktemp("bases"))


@pytest.fixture(scope="module")
def adapters(bases, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {kind: synthetic.build_adapter(root / kind, bases[ADAPTER_BASES[kind][0]], spec)
            for kind, spec in synthetic.ADAPTER_KINDS.items()}


@pytest.fixture(scope="module")
def ref():
    """torch, transformers and peft, the reference implementations (tests only)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    return torch, transformers, peft


# ---------------------------------------------------------------------------- helpers


def _shapes(base: Path) -> dict[str, tuple[int, ...]]:
    with Checkpoint(base) as ckpt:
        return {name: ckpt.info(name).shape for name in ckpt.names()}


def _ours(base: Path, adapter_dirs: list[Path]) -> tuple[dict[str, np.ndarray], MergedWeights]:
    """Every tensor of the merged model, through MergedWeights."""
    with Checkpoint(base) as ckpt:
        weights = MergedWeights(ckpt, load_adapters(ckpt, adapter_dirs))
        tensors = {name: weights.float32(name) for name in weights.names()}
        weights.finish()
        for adapter in weights.adapters:
            adapter.close()
    return tensors, weights


def _base_tensors(base: Path) -> dict[str, np.ndarray]:
    with Checkpoint(base) as ckpt:
        return {name: ckpt.float32(name) for name in ckpt.names()}


def _load(ref, base: Path, auto: str, **kwargs):
    torch, transformers, _ = ref
    cls = getattr(transformers, auto)
    return cls.from_pretrained(base, dtype=torch.float32, **kwargs).eval()


def _peft_merged(ref, base: Path, auto: str, adapter_dirs: list[Path]) -> dict[str, np.ndarray]:
    """peft applying adapters one after another: merge, then load the next onto the merged
    model and merge."""
    _, _, peft = ref
    model = _load(ref, base, auto)
    for directory in adapter_dirs:
        model = peft.PeftModel.from_pretrained(model, directory).merge_and_unload()
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def _assert_same_merge(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray],
                       base: dict[str, np.ndarray]) -> set[str]:
    """Changed tensors equal peft's within tolerance, untouched ones bit for bit. Tensors
    transformers does not load (Qwen3.5's mtp.*) must be the base's. Returns changed names."""
    changed = set()
    for name, value in ours.items():
        expected = theirs.get(name, base.get(name))
        assert expected is not None, name
        if name in base and np.array_equal(base[name], value):
            assert np.array_equal(expected, value), f"{name}: peft changed it, we did not"
            continue
        changed.add(name)
        np.testing.assert_allclose(value, expected, atol=ATOL, rtol=RTOL, err_msg=name)
    return changed


def _rewrite(src: Path, out: Path, tensors=None, config=None) -> Path:
    """A copy of an adapter with its tensors and/or config changed.
    `tensors`: dict -> dict of name -> float32 array; `config`: dict updates (None deletes)."""
    out.mkdir(parents=True, exist_ok=True)
    with SafetensorsFile(src / "adapter_model.safetensors") as file:
        data = {name: file.float32(name) for name in file.tensors}
    if tensors is not None:
        data = tensors(data)
    write_safetensors(out / "adapter_model.safetensors",
                      [pending(name, value, "F32") for name, value in data.items()])
    raw = json.loads((src / "adapter_config.json").read_text())
    for key, value in (config or {}).items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    (out / "adapter_config.json").write_text(json.dumps(raw))
    return out


def _renamed(data: dict[str, np.ndarray], old: str, new: str) -> dict[str, np.ndarray]:
    return {name.replace(old, new, 1): value for name, value in data.items()}


def _input_ids(torch, vocab: int):
    return (torch.arange(24).reshape(2, 12) * 37 + 5) % vocab


def _peft_adapter(ref, base: Path, auto: str, out: Path, mutate=None, **options) -> Path:
    """An adapter saved by peft itself: random non-zero A and B (init_lora_weights=False),
    then `mutate(peft_model)` to move trained parameters away from their initial values."""
    torch, _, peft = ref
    torch.manual_seed(0)
    model = peft.get_peft_model(_load(ref, base, auto),
                                peft.LoraConfig(init_lora_weights=False, **options))
    if mutate is not None:
        with torch.no_grad():
            mutate(model)
    model.save_pretrained(out)
    return out


# ---------------------------------------------------------------------------- against peft


@reference
@pytest.mark.parametrize("kind", list(synthetic.ADAPTER_KINDS))
def test_merge_equals_peft(ref, bases, adapters, kind):
    base_name, auto = ADAPTER_BASES[kind]
    base = bases[base_name]
    ours, weights = _ours(base, [adapters[kind]])
    theirs = _peft_merged(ref, base, auto, [adapters[kind]])
    changed = _assert_same_merge(ours, theirs, _base_tensors(base))
    assert changed == set(weights.adapters[0].targets)
    assert weights.changed and not weights.untied
    assert set(ours) == set(_shapes(base))  # nothing added, nothing lost
    report = weights.report()
    assert {name for _, name, _ in report} == changed
    assert all(0 < change < 10 for _, _, change in report)


@reference
@pytest.mark.parametrize(("base_name", "first", "second"), [
    ("qwen3", "lora", "rslora"),
    ("qwen35", "lora", "dora"),  # DoRA's norm is taken on the already merged weight
])
def test_stacked_adapters_equal_sequential_peft_merges(ref, bases, tmp_path, base_name, first,
                                                       second):
    base = bases[base_name]
    dirs = [synthetic.build_adapter(tmp_path / kind, base, synthetic.ADAPTER_KINDS[kind],
                                    seed=seed)
            for seed, kind in enumerate((first, second), start=3)]
    auto = "Qwen3_5ForConditionalGeneration" if base_name == "qwen35" else "AutoModelForCausalLM"
    ours, _ = _ours(base, dirs)
    theirs = _peft_merged(ref, base, auto, dirs)
    changed = _assert_same_merge(ours, theirs, _base_tensors(base))
    assert changed
    # Order matters for DoRA and is kept: the reverse order is a different model.
    if second == "dora":
        reverse, _ = _ours(base, dirs[::-1])
        name = next(n for n in changed if n.endswith("q_proj.weight"))
        assert not np.allclose(reverse[name], ours[name], atol=ATOL, rtol=RTOL)


@reference
@pytest.mark.parametrize("targets", [("lm_head", "q_proj"), ("embed_tokens",)],
                         ids=["lm_head", "embed_tokens"])
def test_tied_embeddings_are_untied_as_in_training(ref, bases, tmp_path, targets):
    """A LoRA on either half of a tied pair unties it: our merged model computes what the
    unmerged PeftModel computes; peft's own merge (in place on the shared tensor) does not."""
    torch, _, peft = ref
    tied = bases["qwen3_tied"]
    adapter = _peft_adapter(ref, tied, "AutoModelForCausalLM", tmp_path / "a", r=8,
                            lora_alpha=16, target_modules=list(targets))
    ours, weights = _ours(tied, [adapter])
    assert weights.untied and "lm_head.weight" in ours
    base = _base_tensors(tied)
    embed = "model.embed_tokens.weight"
    if targets[0] == "lm_head":
        assert np.array_equal(ours[embed], base[embed])  # token embeddings stay
    else:
        assert np.array_equal(ours["lm_head.weight"], base[embed])  # the head stays

    unmerged = peft.PeftModel.from_pretrained(_load(ref, tied, "AutoModelForCausalLM"), adapter)
    ids = _input_ids(torch, 1024)
    with torch.no_grad():
        expected = unmerged(input_ids=ids).logits
        theirs = unmerged.merge_and_unload()
        peft_logits = theirs(input_ids=ids).logits
    # peft's merge changed both halves of the pair; its head equals ours (or its embedding).
    changed = "lm_head.weight" if targets[0] == "lm_head" else embed
    np.testing.assert_allclose(ours[changed], theirs.state_dict()[changed].numpy(),
                               atol=ATOL, rtol=RTOL)
    assert not torch.allclose(peft_logits, expected, atol=1e-4)

    mine = _load(ref, tied, "AutoModelForCausalLM", tie_word_embeddings=False)
    mine.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()}, strict=True)
    assert mine.lm_head.weight.data_ptr() != mine.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(mine(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)


@reference
def test_ensure_weight_tying_keeps_the_tie(ref, bases, tmp_path):
    """With ensure_weight_tying, peft saves lm_head's LoRA as the transposed embedding LoRA:
    one delta shared by both halves. We merge it once and keep the model tied; peft 0.21.2's
    merge adds it twice to the shared tensor."""
    torch, _, peft = ref
    tied = bases["qwen3_tied"]

    def train(model):  # peft's random embedding init is huge; bring logits to a normal scale
        for name, param in model.named_parameters():
            if "lora_embedding_B" in name:
                param.mul_(0.01)

    adapter = _peft_adapter(ref, tied, "AutoModelForCausalLM", tmp_path / "a", mutate=train,
                            r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"],
                            ensure_weight_tying=True)
    with Checkpoint(adapter) as saved:
        assert any(k.startswith("base_model.model.lm_head.lora_A") for k in saved.names())
    ours, weights = _ours(tied, [adapter])
    assert not weights.untied and "lm_head.weight" not in ours
    unmerged = peft.PeftModel.from_pretrained(_load(ref, tied, "AutoModelForCausalLM"), adapter)
    ids = _input_ids(torch, 1024)
    with torch.no_grad():
        expected = unmerged(input_ids=ids).logits
    mine = _load(ref, tied, "AutoModelForCausalLM")
    mine.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()}, strict=False)
    assert mine.lm_head.weight.data_ptr() == mine.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        torch.testing.assert_close(mine(input_ids=ids).logits, expected, atol=1e-5, rtol=1e-4)
        # peft's merge: the embedding and the (tied) head each add the delta to one tensor
        embed = "model.embed_tokens.weight"
        theirs = unmerged.merge_and_unload().state_dict()[embed].numpy()
    base = _base_tensors(tied)[embed]
    np.testing.assert_allclose(theirs - base, 2 * (ours[embed] - base), atol=1e-5)


@reference
def test_embedding_dora_and_peft_embedding_copies(ref, bases, tmp_path):
    """peft's own save of an embedding LoRA carries a copy of the embedding
    (embed_tokens.base_layer.weight); DoRA on an embedding norms each hidden column over the
    vocabulary, with a magnitude vector of shape (hidden,)."""
    torch, _, _ = ref
    llama = bases["llama"]

    def train(model):
        for name, param in model.named_parameters():
            if "lora_magnitude_vector" in name:
                param.mul_(1 + 0.3 * torch.randn_like(param))

    adapter = _peft_adapter(ref, llama, "AutoModelForCausalLM", tmp_path / "a", mutate=train,
                            r=8, lora_alpha=16, target_modules=["embed_tokens", "q_proj"],
                            use_dora=True)
    with Checkpoint(adapter) as saved:
        shapes = {name: saved.info(name).shape for name in saved.names()}
    assert shapes["base_model.model.model.embed_tokens.base_layer.weight"] == (1024, 256)
    assert shapes["base_model.model.model.embed_tokens.lora_magnitude_vector"] == (256,)
    ours, _ = _ours(llama, [adapter])
    theirs = _peft_merged(ref, llama, "AutoModelForCausalLM", [adapter])
    changed = _assert_same_merge(ours, theirs, _base_tensors(llama))
    assert "model.embed_tokens.weight" in changed


@reference
def test_trainable_tokens_replace_rows_and_keep_the_tie(ref, bases, tmp_path):
    torch, _, _ = ref
    tied = bases["qwen3_tied"]

    def train(model):
        for name, param in model.named_parameters():
            if "trainable_tokens_delta" in name:
                param.copy_(torch.randn_like(param) * 0.05)

    adapter = _peft_adapter(ref, tied, "AutoModelForCausalLM", tmp_path / "a", mutate=train,
                            r=4, lora_alpha=8, target_modules=["q_proj"],
                            trainable_token_indices=[3, 5, 1000])
    ours, weights = _ours(tied, [adapter])
    assert not weights.untied
    theirs = _peft_merged(ref, tied, "AutoModelForCausalLM", [adapter])
    base = _base_tensors(tied)
    changed = _assert_same_merge(ours, theirs, base)
    assert "model.embed_tokens.weight" in changed
    rows = np.flatnonzero((ours["model.embed_tokens.weight"] != base["model.embed_tokens.weight"])
                          .any(axis=1))
    assert rows.tolist() == [3, 5, 1000]


@reference
@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_fan_in_fan_out_conv1d(ref, tmp_path, use_dora):
    """GPT-2's Conv1D stores weights (in, out): the delta is transposed (and DoRA's norm runs
    over columns)."""
    torch, transformers, _ = ref
    config = transformers.GPT2Config(n_embd=64, n_layer=1, n_head=2, vocab_size=128,
                                     n_positions=32)
    torch.manual_seed(1)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    base = tmp_path / "gpt2"

    def train(model):
        for name, param in model.named_parameters():
            if "lora_magnitude_vector" in name:
                param.mul_(1 + 0.3 * torch.randn_like(param))

    adapter = _peft_adapter(ref, base, "GPT2LMHeadModel", tmp_path / "a", mutate=train, r=4,
                            lora_alpha=8, target_modules=["c_attn", "c_fc"],
                            fan_in_fan_out=True, use_dora=use_dora)
    ours, _ = _ours(base, [adapter])
    theirs = _peft_merged(ref, base, "GPT2LMHeadModel", [adapter])
    changed = _assert_same_merge(ours, theirs, _base_tensors(base))
    assert changed == {"transformer.h.0.attn.c_attn.weight", "transformer.h.0.mlp.c_fc.weight"}


@reference
def test_lora_bias_and_trained_biases(ref, tmp_path):
    """bias="all" saves every trained bias (a replacement); lora_bias adds lora_B.bias * s."""
    torch, transformers, _ = ref
    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128,
                                      num_hidden_layers=1, num_attention_heads=2,
                                      num_key_value_heads=2, vocab_size=128,
                                      attention_bias=True)
    torch.manual_seed(2)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "base")
    base = tmp_path / "base"

    def train(model):
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)

    adapter = _peft_adapter(ref, base, "LlamaForCausalLM", tmp_path / "a", mutate=train, r=4,
                            lora_alpha=8, target_modules=["q_proj", "v_proj"], bias="all",
                            lora_bias=True)
    ours, _ = _ours(base, [adapter])
    theirs = _peft_merged(ref, base, "LlamaForCausalLM", [adapter])
    changed = _assert_same_merge(ours, theirs, _base_tensors(base))
    assert {"model.layers.0.self_attn.q_proj.bias", "model.layers.0.self_attn.k_proj.bias",
            "model.layers.0.self_attn.q_proj.weight"} <= changed


# ---------------------------------------------------------------------------- prefixes


@pytest.mark.parametrize(("kind", "base_name", "old", "new"), [
    # trained on the text-only model, merged into the multimodal Qwen3.5 checkpoint
    ("dora", "qwen35", "base_model.model.model.language_model.", "base_model.model.model."),
    # trained on a multimodal wrapper, merged into a text-only checkpoint
    ("lora", "qwen3", "base_model.model.model.", "base_model.model.model.language_model."),
])
def test_prefixes_are_reconciled_with_the_base(bases, adapters, tmp_path, kind, base_name, old,
                                                new):
    base = bases[base_name]
    renamed = _rewrite(adapters[kind], tmp_path / "renamed",
                       tensors=lambda data: _renamed(data, old, new))
    with SafetensorsFile(renamed / "adapter_model.safetensors") as file:
        assert all(name.startswith(new) for name in file.tensors)
    expected, _ = _ours(base, [adapters[kind]])  # equal to peft: test_merge_equals_peft
    ours, _ = _ours(base, [renamed])
    assert ours.keys() == expected.keys()
    for name in ours:
        assert np.array_equal(ours[name], expected[name]), name


def test_a_base_tensor_named_twice_through_two_prefixes(bases, adapters, tmp_path):
    def both(data):
        extra = _renamed({k: v for k, v in data.items() if "layers.0.self_attn.q_proj" in k},
                         "base_model.model.model.", "base_model.model.model.language_model.")
        return {**data, **extra}

    bad = _rewrite(adapters["lora"], tmp_path / "bad", tensors=both)
    with pytest.raises(InputError) as error:
        load_adapter(bad, _shapes(bases["qwen3"]))
    assert str(error.value) == (
        "bad/adapter_model.safetensors: base tensor model.layers.0.self_attn.q_proj.weight is "
        "named twice: by base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight and "
        "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight")


def test_an_ambiguous_key_is_refused(adapters, tmp_path):
    """A key that fits two base tensors through different prefixes is not guessed at."""
    shapes = {"model.layers.0.self_attn.q_proj.weight": (256, 256),
              "model.language_model.layers.0.self_attn.q_proj.weight": (256, 256)}
    legacy = _rewrite(adapters["lora"], tmp_path / "q0", tensors=lambda data: _renamed(
        {k: v for k, v in data.items() if "layers.0.self_attn.q_proj" in k},
        "base_model.model.model.", "base_model.model.language_model.model."))
    with pytest.raises(InputError) as error:
        load_adapter(legacy, shapes)
    assert str(error.value) == (
        "q0/adapter_model.safetensors: tensor base_model.model.language_model.model.layers.0."
        "self_attn.q_proj.lora_A.weight matches several base tensors "
        "(model.language_model.layers.0.self_attn.q_proj.weight, "
        "model.layers.0.self_attn.q_proj.weight)")


# ---------------------------------------------------------------------------- tied heads


def test_a_tied_head_is_a_virtual_tensor(bases, tmp_path):
    """An lm_head LoRA on a tied base matches a virtual lm_head.weight shaped like the
    embedding; without tie_word_embeddings it matches nothing."""
    spec = synthetic.with_options(synthetic.ADAPTER_KINDS["lora"],
                                  target_modules=("lm_head",))
    adapter = synthetic.build_adapter(tmp_path / "head", bases["qwen3"], spec)
    shapes = _shapes(bases["qwen3_tied"])
    with load_adapter(adapter, shapes) as loaded:
        assert loaded.targets == {"lm_head.weight"} and loaded.unties
    with pytest.raises(InputError) as error:
        load_adapter(adapter, shapes, tie_word_embeddings=False)
    assert str(error.value) == (
        "head/adapter_model.safetensors: tensor base_model.model.lm_head.lora_A.weight matches "
        "no base tensor (lm_head.weight not found; adapter for another base?)")
    ours, weights = _ours(bases["qwen3_tied"], [adapter])
    base = _base_tensors(bases["qwen3_tied"])
    assert weights.untied and weights.shape("lm_head.weight") == (1024, 256)
    assert np.array_equal(ours["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert not np.array_equal(ours["lm_head.weight"], base["model.embed_tokens.weight"])


# ---------------------------------------------------------------------------- scale rules


def _config(**changes) -> AdapterConfig:
    values = dict(r=8, lora_alpha=16, use_rslora=False, use_dora=False, fan_in_fan_out=False,
                  lora_bias=False, bias="none", rank_pattern={}, alpha_pattern={},
                  modules_to_save=(), trainable_token_indices=None, ensure_weight_tying=False,
                  peft_version="0.21.2")
    values.update(changes)
    return AdapterConfig(**values)


def test_pattern_rules_follow_the_peft_version():
    assert pattern_rule("0.21.2") == pattern_rule("0.18.0.dev0@abc") == "0.15"
    assert pattern_rule("0.15.0") == "0.15"
    assert pattern_rule("0.14.0") == "0.14"
    assert pattern_rule("0.13.2") == "0.13"
    assert pattern_rule(None) is None
    full = "model.layers.0.self_attn.q_proj"
    config = _config(alpha_pattern={full: 64})
    # >= 0.15 lets a key match the whole path; before, only a suffix after a dot matched.
    assert rank_and_alpha(config, full, "0.15") == (8, 64)
    assert rank_and_alpha(config, full, "0.14") == (8, 16)
    # <= 0.13 looked one key up for both: a matching rank key hid the alpha key.
    config = _config(rank_pattern={"o_proj": 4}, alpha_pattern={"self_attn.o_proj": 32})
    module = "model.layers.1.self_attn.o_proj"
    assert rank_and_alpha(config, module, "0.15") == (4, 32)
    assert rank_and_alpha(config, module, "0.14") == (4, 32)
    assert rank_and_alpha(config, module, "0.13") == (4, 16)
    # the first matching key in dict order wins
    config = _config(alpha_pattern={"q_proj": 1, "self_attn.q_proj": 2})
    assert rank_and_alpha(config, "model.layers.0.self_attn.q_proj", "0.15") == (8, 1)


def test_scales_of_every_kind(adapters, bases):
    """alpha / r, alpha / sqrt(r) with rslora (16, not 2: the 8x error llama.cpp's LoRA path
    makes), and per-module r and alpha from the patterns."""
    cases = {"lora": 8 / 8, "rslora": 128 / 8, "seq_cls": 128 / 64, "dora": 16 / 8,
             "embedding": 16 / 8}
    for kind, scale in cases.items():
        with load_adapter(adapters[kind], _shapes(bases[ADAPTER_BASES[kind][0]])) as adapter:
            assert set(adapter.scales.values()) == {scale}, kind
    with load_adapter(adapters["pattern"], _shapes(bases["qwen3"])) as adapter:
        scales = adapter.scales
    assert scales["model.layers.1.mlp.down_proj.weight"] == 48 / 12
    assert scales["model.layers.0.mlp.down_proj.weight"] == 16 / 8
    assert scales["model.layers.0.self_attn.o_proj.weight"] == 16 / 4
    assert scales["model.layers.1.self_attn.k_proj.weight"] == 4 / 8
    assert scales["model.layers.1.self_attn.q_proj.weight"] == 16 / 8


def test_no_peft_version_and_rules_that_disagree(adapters, bases, tmp_path):
    full = "model.layers.0.self_attn.q_proj"
    bad = _rewrite(adapters["lora"], tmp_path / "old", config={
        "peft_version": None, "alpha_pattern": {full: 64}})
    with pytest.raises(InputError) as error:
        load_adapter(bad, _shapes(bases["qwen3"]))
    assert str(error.value) == (
        "old/adapter_config.json: rank_pattern/alpha_pattern give "
        "model.layers.0.self_attn.q_proj r=8, lora_alpha=64 under peft >= 0.15 but r=8, "
        "lora_alpha=8 under peft 0.14, and there is no peft_version; add \"peft_version\" "
        "(the peft it was trained with) to adapter_config.json")
    fixed = _rewrite(bad, tmp_path / "fixed", config={"peft_version": "0.14.0"})
    with load_adapter(fixed, _shapes(bases["qwen3"])) as adapter:
        assert adapter.scales[f"{full}.weight"] == 1.0


# ---------------------------------------------------------------------------- refusals

REFUSALS = [
    ({"peft_type": "LOHA"},
     "peft_type is 'LOHA', not 'LORA'; only LoRA adapters can be merged"),
    ({"init_lora_weights": "pissa_niter_4"},
     "init_lora_weights='pissa_niter_4' rewrites the base weights during training, so the "
     "adapter cannot be merged into the original base (convert it to a plain LoRA with peft "
     "first)"),
    ({"init_lora_weights": "olora"},
     "init_lora_weights='olora' rewrites the base weights during training, so the adapter "
     "cannot be merged into the original base (convert it to a plain LoRA with peft first)"),
    ({"init_lora_weights": "corda"},
     "init_lora_weights='corda' rewrites the base weights during training, so the adapter "
     "cannot be merged into the original base (convert it to a plain LoRA with peft first)"),
    ({"init_lora_weights": "lora_ga"},
     "init_lora_weights='lora_ga' rewrites the base weights during training, so the adapter "
     "cannot be merged into the original base (convert it to a plain LoRA with peft first)"),
    ({"init_lora_weights": "loftq"},
     "init_lora_weights='loftq' rewrites the base weights during training, so the adapter "
     "cannot be merged into the original base (convert it to a plain LoRA with peft first)"),
    ({"use_qalora": True},
     "use_qalora=true (QA-LoRA pools its input, its delta is not B @ A) cannot be merged"),
    ({"layer_replication": [[0, 2], [1, 2]]},
     "layer_replication=[[0, 2], [1, 2]] duplicates base layers; it cannot be merged into "
     "the original base"),
    ({"alora_invocation_tokens": [7, 8]},
     "alora_invocation_tokens is set: an Activated LoRA acts only after its invocation "
     "tokens and cannot be merged"),
    ({"target_parameters": ["mlp.experts.down_proj"]},
     "target_parameters=['mlp.experts.down_proj'] (LoRA on raw parameters, e.g. MoE experts) "
     "is not supported"),
    ({"use_bdlora": {"nblocks": 2}},
     "use_bdlora is set: the block-diagonal (BD-LoRA) LoRA variant is not supported"),
    ({"bias": "some"}, "bias='some' is not one of 'none', 'all', 'lora_only'"),
]


@pytest.mark.parametrize(("change", "message"), REFUSALS,
                         ids=[next(iter(c)) + str(i) for i, (c, _) in enumerate(REFUSALS)])
def test_unmergeable_configs_are_refused(adapters, bases, tmp_path, change, message):
    bad = _rewrite(adapters["lora"], tmp_path / "bad", config=change)
    with pytest.raises(InputError) as error:
        load_adapter(bad, _shapes(bases["qwen3"]))
    assert str(error.value) == f"bad/adapter_config.json: {message}"


def test_harmless_inits_are_accepted(adapters, bases, tmp_path):
    for init in (False, "gaussian", "eva", "orthogonal", "mica"):
        fine = _rewrite(adapters["lora"], tmp_path / str(init), config={"init_lora_weights": init})
        load_adapter(fine, _shapes(bases["qwen3"])).close()


Q0 = "base_model.model.model.layers.0.self_attn.q_proj"


def _bad_tensors(name: str):
    """Tensor edits that make a lora adapter for the qwen3 base wrong, with the message."""
    rng = np.random.default_rng(0)
    return {
        "unmatched": (lambda d: {**d, "base_model.model.model.layers.7.mlp.up_proj.lora_A."
                                    "weight": d[f"{Q0}.lora_A.weight"]},
                      "tensor base_model.model.model.layers.7.mlp.up_proj.lora_A.weight matches "
                      "no base tensor (model.layers.7.mlp.up_proj.weight not found; adapter for "
                      "another base?)"),
        "shape": (lambda d: {**d, f"{Q0}.lora_B.weight": rng.standard_normal(
            (512, 8), dtype=np.float32)},
                  f"tensor {Q0}.lora_A.weight has shape (8, 256) and {Q0}.lora_B.weight has "
                  "shape (512, 8), which need base tensor model.layers.0.self_attn.q_proj.weight "
                  "of shape (512, 256), but it has shape (256, 256) (adapter for another base?)"),
        "ranks": (lambda d: {**d, f"{Q0}.lora_B.weight": rng.standard_normal(
            (256, 4), dtype=np.float32)},
                  f"tensor {Q0}.lora_B.weight has shape (256, 4) but {Q0}.lora_A.weight has "
                  "shape (8, 256) (ranks differ)"),
        "missing_b": (lambda d: {k: v for k, v in d.items() if k != f"{Q0}.lora_B.weight"},
                      f"{Q0}.lora_A.weight has no matching lora_B"),
        "not_lora": (lambda d: {**d, f"{Q0}.lora_C.weight": d[f"{Q0}.lora_A.weight"]},
                     f"tensor {Q0}.lora_C.weight is neither a LoRA tensor nor a module in "
                     "modules_to_save (unexpected key)"),
        "legacy_twice": (lambda d: {**d, f"{Q0}.lora_A.default.weight": d[f"{Q0}.lora_A.weight"]},
                         "base tensor model.layers.0.self_attn.q_proj.weight is named twice: by "
                         f"{Q0}.lora_A.weight and {Q0}.lora_A.default.weight"),
        "magnitude": (lambda d: {**d, f"{Q0}.lora_magnitude_vector": np.ones(256, np.float32)},
                      f"tensor {Q0}.lora_magnitude_vector is a DoRA magnitude but use_dora is "
                      "not set in adapter_config.json"),
        "lora_bias": (lambda d: {**d, f"{Q0}.lora_B.bias": np.ones(256, np.float32)},
                      "lora_bias is set but base tensor model.layers.0.self_attn.q_proj.bias "
                      f"does not exist ({Q0}.lora_B.bias); the LoRA bias cannot be merged"),
    }[name]


@pytest.mark.parametrize("case", ["unmatched", "shape", "ranks", "missing_b", "not_lora",
                                  "legacy_twice", "magnitude", "lora_bias"])
def test_bad_keys_are_refused_with_one_line(adapters, bases, tmp_path, case):
    edit, message = _bad_tensors(case)
    bad = _rewrite(adapters["lora"], tmp_path / "bad", tensors=edit)
    with pytest.raises(InputError) as error:
        load_adapter(bad, _shapes(bases["qwen3"]))
    assert str(error.value) == f"bad/adapter_model.safetensors: {message}"
    assert "\n" not in str(error.value)


def test_legacy_default_keys_merge_like_new_ones(adapters, bases, tmp_path):
    legacy = _rewrite(adapters["lora"], tmp_path / "legacy", tensors=lambda d: {
        k.replace(".weight", ".default.weight"): v for k, v in d.items()})
    expected, _ = _ours(bases["qwen3"], [adapters["lora"]])
    ours, _ = _ours(bases["qwen3"], [legacy])
    assert all(np.array_equal(ours[name], expected[name]) for name in ours)


def test_r_must_equal_the_rank_of_lora_a(adapters, bases, tmp_path):
    bad = _rewrite(adapters["lora"], tmp_path / "bad", config={"r": 4})
    with pytest.raises(InputError) as error:
        load_adapter(bad, _shapes(bases["qwen3"]))
    assert str(error.value) == (
        "bad/adapter_model.safetensors: tensor base_model.model.model.layers.0.mlp.down_proj."
        "lora_A.weight has rank 8 but adapter_config.json gives r=4 for "
        "model.layers.0.mlp.down_proj")


def test_an_adapter_for_another_base_is_refused(bases, tmp_path):
    llama_lora = synthetic.build_adapter(tmp_path / "llama", bases["llama"],
                                         synthetic.ADAPTER_KINDS["lora"])
    with pytest.raises(InputError) as error:
        load_adapter(llama_lora, _shapes(bases["qwen3"]))
    assert str(error.value) == (
        "llama/adapter_model.safetensors: tensor base_model.model.model.layers.0.mlp.down_proj."
        "lora_A.weight has shape (8, 768) and base_model.model.model.layers.0.mlp.down_proj."
        "lora_B.weight has shape (256, 8), which need base tensor "
        "model.layers.0.mlp.down_proj.weight of shape (256, 768), but it has shape (256, 512) "
        "(adapter for another base?)")


def test_unconsumed_tensors_are_reported(adapters, bases):
    with Checkpoint(bases["qwen3"]) as ckpt:
        weights = MergedWeights(ckpt, load_adapters(ckpt, [adapters["lora"]]))
        for name in weights.names():
            if name != "model.layers.1.mlp.up_proj.weight":
                weights.float32(name)
        with pytest.raises(InputError) as error:
            weights.finish()
    assert str(error.value) == (
        "lora/adapter_model.safetensors: tensor base_model.model.model.layers.1.mlp.up_proj."
        "lora_A.weight was never merged (base tensor model.layers.1.mlp.up_proj.weight was "
        "not visited)")


def test_nan_in_a_result_names_the_tensor(adapters, bases, tmp_path):
    def poison(data):
        data[f"{Q0}.lora_B.weight"][3, 2] = np.nan
        return data

    bad = _rewrite(adapters["lora"], tmp_path / "bad", tensors=poison)
    with Checkpoint(bases["qwen3"]) as ckpt:
        weights = MergedWeights(ckpt, load_adapters(ckpt, [bad]))
        with pytest.raises(InputError) as error:
            weights.float32("model.layers.0.self_attn.q_proj.weight")
    assert str(error.value) == (
        "bad/adapter_model.safetensors: merging into model.layers.0.self_attn.q_proj.weight "
        "produced NaN or Inf values (broken adapter?)")


def test_modules_to_save_replaces_and_may_resize(adapters, bases, tmp_path):
    """A saved module replaces the base tensor, whatever the base held; a resized vocabulary
    (more rows) is accepted, other shape changes are not."""
    clf = bases["classifier"]
    ours, weights = _ours(clf, [adapters["seq_cls"]])
    with SafetensorsFile(adapters["seq_cls"] / "adapter_model.safetensors") as file:
        assert np.array_equal(ours["score.weight"], file.float32("base_model.model.score.weight"))

    def grow(data):
        data["base_model.model.model.embed_tokens.weight"] = np.ones((1030, 256), np.float32)
        return data

    grown = _rewrite(adapters["lora"], tmp_path / "grown", tensors=grow)
    ours, weights = _ours(bases["qwen3"], [grown])
    assert weights.shape("model.embed_tokens.weight") == (1030, 256)
    assert ours["model.embed_tokens.weight"].shape == (1030, 256)

    def wrong(data):
        data["base_model.model.score.weight"] = np.ones((2, 128), np.float32)
        return data

    bad = _rewrite(adapters["seq_cls"], tmp_path / "bad", tensors=wrong)
    with pytest.raises(InputError) as error:
        load_adapter(bad, _shapes(clf))
    assert str(error.value) == (
        "bad/adapter_model.safetensors: tensor base_model.model.score.weight has shape "
        "(2, 128) but base tensor score.weight has shape (2, 256) (adapter for another base?)")


def test_a_classifier_has_no_head_to_untie(bases, tmp_path):
    spec = synthetic.with_options(synthetic.ADAPTER_KINDS["embedding"],
                                  target_modules=("embed_tokens",))
    adapter = synthetic.build_adapter(tmp_path / "emb", bases["classifier"], spec)
    ours, weights = _ours(bases["classifier"], [adapter])
    assert not weights.untied and "lm_head.weight" not in ours
    assert weights.changed


def test_adapters_are_validated_against_the_shapes_before_them(adapters, bases, tmp_path):
    """A first adapter resizes the vocabulary; a second one is built for the new size."""
    rng = np.random.default_rng(5)
    grown = _rewrite(adapters["lora"], tmp_path / "grown", tensors=lambda d: {
        **d, "base_model.model.model.embed_tokens.weight": rng.standard_normal(
            (1030, 256), dtype=np.float32) * 0.05})
    key = "base_model.model.model.embed_tokens"
    embed_lora = _rewrite(adapters["lora"], tmp_path / "emb", tensors=lambda d: {
        f"{key}.lora_embedding_A": rng.standard_normal((8, 1030), dtype=np.float32),
        f"{key}.lora_embedding_B": rng.standard_normal((256, 8), dtype=np.float32) * 0.01})
    with pytest.raises(InputError, match="adapter for another base"):
        load_adapter(embed_lora, _shapes(bases["qwen3"]))
    ours, weights = _ours(bases["qwen3"], [grown, embed_lora])
    assert weights.shape("model.embed_tokens.weight") == (1030, 256)
    assert ours["model.embed_tokens.weight"].shape == (1030, 256)
    assert [a.relative_change("model.embed_tokens.weight") > 0 for a in weights.adapters] == [
        True, True]


def test_missing_files_are_refused(tmp_path, adapters, bases):
    with pytest.raises(InputError, match=r"no adapter_config\.json"):
        load_adapter(tmp_path, {})
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(adapters["lora"] / "adapter_config.json", pickled)
    (pickled / "adapter_model.bin").write_bytes(b"\x80")
    with pytest.raises(InputError, match="never unpickles"):
        load_adapter(pickled, _shapes(bases["qwen3"]))
