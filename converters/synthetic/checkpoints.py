"""Tiny random-weight Hugging Face checkpoints, structurally faithful to the five seed systems.

Everything the converter meets in the real models is here at toy size: the config fields
and tensor names of each architecture, tied and untied embeddings, bf16 and f16 weights,
single-file and sharded layouts, tokenizers with their chat templates, and PEFT adapters
of every kind we merge. Weights are deterministic: each tensor's values depend only on the
seed and the tensor's name, never on the order tensors are produced in.

Written with numpy alone (no torch): `amicus demo` builds its stand-in models with it on a
laptop that has no torch. Hidden and intermediate sizes are multiples of 256 so that
Q4_K_M really uses K-quants on them.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from converters.checkpoint.safetensors_io import Checkpoint, PendingTensor, write_checkpoint
from converters.synthetic import chat_templates
from converters.synthetic.tokenizers import (
    TokenizerInfo,
    write_llama_tokenizer,
    write_qwen_tokenizer,
)

WEIGHT_STD = 0.05  # large enough that logits differ clearly between tokens
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Shape:
    """Dimensions of a synthetic transformer (config vocab may exceed the tokenizer's)."""

    hidden: int = 256
    intermediate: int = 512
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 64
    vocab: int = 1024


@dataclass(frozen=True)
class LinearAttentionShape:
    """Gated-DeltaNet dimensions of Qwen3.5 (K key heads, V value heads, V a multiple of K)."""

    key_heads: int = 2
    value_heads: int = 4
    key_head_dim: int = 32
    value_head_dim: int = 32
    conv_kernel: int = 4
    full_attention_interval: int = 4


@dataclass(frozen=True)
class SyntheticModel:
    """What a builder wrote: the directory, its config and its tokenizer."""

    path: Path
    architecture: str
    config: dict
    tokenizer: TokenizerInfo


# ---------------------------------------------------------------------------- weights


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def _normal(seed: int, name: str, shape: tuple[int, ...], std: float = WEIGHT_STD) -> np.ndarray:
    return (_rng(seed, name).standard_normal(shape, dtype=np.float32) * std).astype(np.float32)


def _norm_weight(seed: int, name: str, shape: tuple[int, ...], centre: float) -> np.ndarray:
    """RMSNorm weights near `centre` (1 for Llama/Qwen3, 0 for Qwen3.5's zero-centred norms),
    perturbed so that a converter which forgets a transform is caught by the tests."""
    return centre + _normal(seed, name, shape, std=0.1)


def _tensor(name: str, shape: tuple[int, ...], dtype: str, make: Callable[[], np.ndarray]):
    return PendingTensor(name, shape, dtype, make)


def _weights(
    shapes: dict[str, tuple[int, ...]], dtype: str, seed: int, norm_centre: float = 1.0,
    special: dict[str, Callable[..., np.ndarray]] | None = None,
) -> list[PendingTensor]:
    """Random tensors for a name -> shape table. Names containing `norm` get norm weights;
    `special` overrides the values of particular tensors."""
    special = special or {}
    out = []
    for name, shape in shapes.items():
        if name in special:
            make = special[name]
        elif "norm" in name:
            def make(n=name, s=shape):
                return _norm_weight(seed, n, s, norm_centre)
        else:
            def make(n=name, s=shape):
                return _normal(seed, n, s)
        out.append(_tensor(name, shape, dtype, make))
    return out


def _decoder_layer_shapes(prefix: str, s: Shape, qk_norm: bool) -> dict[str, tuple[int, ...]]:
    """Self-attention + SwiGLU MLP + two RMSNorms: the Llama/Qwen3 decoder layer."""
    q, kv = s.heads * s.head_dim, s.kv_heads * s.head_dim
    shapes = {
        f"{prefix}.input_layernorm.weight": (s.hidden,),
        f"{prefix}.self_attn.q_proj.weight": (q, s.hidden),
        f"{prefix}.self_attn.k_proj.weight": (kv, s.hidden),
        f"{prefix}.self_attn.v_proj.weight": (kv, s.hidden),
        f"{prefix}.self_attn.o_proj.weight": (s.hidden, q),
    }
    if qk_norm:
        shapes[f"{prefix}.self_attn.q_norm.weight"] = (s.head_dim,)
        shapes[f"{prefix}.self_attn.k_norm.weight"] = (s.head_dim,)
    shapes.update(_mlp_shapes(prefix, s))
    return shapes


def _mlp_shapes(prefix: str, s: Shape) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.post_attention_layernorm.weight": (s.hidden,),
        f"{prefix}.mlp.gate_proj.weight": (s.intermediate, s.hidden),
        f"{prefix}.mlp.up_proj.weight": (s.intermediate, s.hidden),
        f"{prefix}.mlp.down_proj.weight": (s.hidden, s.intermediate),
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_card(out: Path, architecture: str, license_name: str = "apache-2.0") -> None:
    """A model card with the YAML front matter real repos carry (license, tags)."""
    out.joinpath("README.md").write_text(
        f"---\nlicense: {license_name}\nlibrary_name: transformers\ntags:\n- synthetic\n---\n"
        f"# Synthetic {architecture}\n\nTiny random weights for tests: meaningless output.\n",
        encoding="utf-8")


def _torch_dtype(dtype: str) -> str:
    return {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[dtype]


# ---------------------------------------------------------------------------- Qwen3

QWEN3_SHAPE = Shape()


def _qwen3_config(s: Shape, tok: TokenizerInfo, tied: bool, dtype: str) -> dict:
    """Field for field what Qwen3-4B's config.json carries, at toy size."""
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": tok.special_ids["<|endoftext|>"],
        "eos_token_id": tok.eos_token_id,
        "head_dim": s.head_dim,
        "hidden_act": "silu",
        "hidden_size": s.hidden,
        "initializer_range": 0.02,
        "intermediate_size": s.intermediate,
        "max_position_embeddings": 40960,
        "max_window_layers": s.layers,
        "model_type": "qwen3",
        "num_attention_heads": s.heads,
        "num_hidden_layers": s.layers,
        "num_key_value_heads": s.kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": tied,
        "torch_dtype": _torch_dtype(dtype),
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": s.vocab,
    }


def _qwen3_backbone_shapes(s: Shape) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (s.vocab, s.hidden)}
    for i in range(s.layers):
        shapes.update(_decoder_layer_shapes(f"model.layers.{i}", s, qk_norm=True))
    shapes["model.norm.weight"] = (s.hidden,)
    return shapes


def build_qwen3(
    out: Path,
    *,
    shape: Shape = QWEN3_SHAPE,
    tied: bool = True,
    dtype: str = "BF16",
    max_shard_bytes: int | None = None,
    seed: int = 0,
    chat_template: str = chat_templates.QWEN3_CHAT_TEMPLATE,
) -> SyntheticModel:
    """A Qwen3ForCausalLM (moral-audit, sentencing): q/k norms, tied embeddings by default."""
    out.mkdir(parents=True, exist_ok=True)
    tok = write_qwen_tokenizer(out, variant="qwen2", chat_template=chat_template,
                               vocab_size=shape.vocab)
    config = _qwen3_config(shape, tok, tied, dtype)
    shapes = _qwen3_backbone_shapes(shape)
    if not tied:
        shapes["lm_head.weight"] = (shape.vocab, shape.hidden)
    write_checkpoint(out, _weights(shapes, dtype, seed), max_shard_bytes=max_shard_bytes)
    _write_json(out / "config.json", config)
    _write_card(out, config["architectures"][0])
    _write_json(out / "generation_config.json", _generation_config(tok, qwen=True))
    return SyntheticModel(out, "Qwen3ForCausalLM", config, tok)


def _generation_config(tok: TokenizerInfo, qwen: bool) -> dict:
    if qwen:
        eos = [tok.eos_token_id, tok.special_ids["<|endoftext|>"]]
        return {"bos_token_id": tok.special_ids["<|endoftext|>"], "do_sample": True,
                "eos_token_id": eos, "pad_token_id": tok.pad_token_id,
                "temperature": 0.6, "top_k": 20, "top_p": 0.95}
    return {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
            "do_sample": True, "temperature": 0.6, "top_p": 0.9}


CLASSIFIER_LABELS = {0: "non_unsafe", 1: "unsafe"}


def build_qwen3_classifier(
    out: Path,
    *,
    shape: Shape = QWEN3_SHAPE,
    dtype: str = "BF16",
    max_shard_bytes: int | None = None,
    seed: int = 0,
) -> SyntheticModel:
    """A Qwen3ForSequenceClassification (intent-safety): `score` head [2, hidden], no lm_head,
    id2label {0: non_unsafe, 1: unsafe} as seed 002's merged model has."""
    out.mkdir(parents=True, exist_ok=True)
    tok = write_qwen_tokenizer(out, variant="qwen2",
                               chat_template=chat_templates.QWEN3_CHAT_TEMPLATE,
                               vocab_size=shape.vocab)
    config = _qwen3_config(shape, tok, tied=True, dtype=dtype)
    config["architectures"] = ["Qwen3ForSequenceClassification"]
    config["id2label"] = {str(k): v for k, v in CLASSIFIER_LABELS.items()}
    config["label2id"] = {v: k for k, v in CLASSIFIER_LABELS.items()}
    config["pad_token_id"] = tok.pad_token_id
    shapes = _qwen3_backbone_shapes(shape)
    shapes["score.weight"] = (len(CLASSIFIER_LABELS), shape.hidden)
    write_checkpoint(out, _weights(shapes, dtype, seed), max_shard_bytes=max_shard_bytes)
    _write_json(out / "config.json", config)
    _write_card(out, config["architectures"][0])
    return SyntheticModel(out, "Qwen3ForSequenceClassification", config, tok)


# ---------------------------------------------------------------------------- Qwen3.5

QWEN35_SHAPE = Shape(hidden=256, intermediate=512, layers=4, heads=4, kv_heads=2, head_dim=64,
                     vocab=1024)
QWEN35_LINEAR = LinearAttentionShape(key_heads=2, value_heads=4, key_head_dim=64,
                                     value_head_dim=64)
# A tiny but complete vision tower: converters must drop it, transformers must load it.
QWEN35_VISION = {"depth": 1, "hidden_size": 64, "num_heads": 2, "intermediate_size": 128,
                 "num_position_embeddings": 16, "patch_size": 16, "spatial_merge_size": 2,
                 "temporal_patch_size": 2, "in_channels": 3}


def _qwen35_layer_types(layers: int, interval: int) -> list[str]:
    return ["full_attention" if (i + 1) % interval == 0 else "linear_attention"
            for i in range(layers)]


def _qwen35_config(s: Shape, la: LinearAttentionShape, tok: TokenizerInfo, tied: bool,
                   dtype: str) -> dict:
    """Qwen3.5-0.8B's config.json layout: text hparams under text_config, mrope sections
    summing to head_dim * partial_rotary_factor / 2."""
    rotary = int(s.head_dim * 0.25) // 2
    mrope = [rotary // 3 + (1 if i < rotary % 3 else 0) for i in range(3)]
    v = QWEN35_VISION
    return {
        "architectures": ["Qwen3_5ForConditionalGeneration"],
        "model_type": "qwen3_5",
        "image_token_id": s.vocab - 1,
        "video_token_id": s.vocab - 2,
        "vision_start_token_id": s.vocab - 4,
        "vision_end_token_id": s.vocab - 3,
        "tie_word_embeddings": tied,
        "text_config": {
            "model_type": "qwen3_5_text",
            "attention_bias": False,
            "attention_dropout": 0.0,
            "attn_output_gate": True,
            "dtype": _torch_dtype(dtype),
            "eos_token_id": tok.special_ids["<|endoftext|>"],
            "full_attention_interval": la.full_attention_interval,
            "head_dim": s.head_dim,
            "hidden_act": "silu",
            "hidden_size": s.hidden,
            "initializer_range": 0.02,
            "intermediate_size": s.intermediate,
            "layer_types": _qwen35_layer_types(s.layers, la.full_attention_interval),
            "linear_conv_kernel_dim": la.conv_kernel,
            "linear_key_head_dim": la.key_head_dim,
            "linear_num_key_heads": la.key_heads,
            "linear_num_value_heads": la.value_heads,
            "linear_value_head_dim": la.value_head_dim,
            "mamba_ssm_dtype": "float32",
            "max_position_embeddings": 262144,
            "mlp_only_layers": [],
            "mtp_num_hidden_layers": 1,
            "mtp_use_dedicated_embeddings": False,
            "num_attention_heads": s.heads,
            "num_hidden_layers": s.layers,
            "num_key_value_heads": s.kv_heads,
            "partial_rotary_factor": 0.25,
            "rms_norm_eps": 1e-06,
            "rope_parameters": {"mrope_interleaved": True, "mrope_section": mrope,
                                "partial_rotary_factor": 0.25, "rope_theta": 10000000,
                                "rope_type": "default"},
            "tie_word_embeddings": tied,
            "use_cache": True,
            "vocab_size": s.vocab,
        },
        "vision_config": {
            "model_type": "qwen3_5",
            "deepstack_visual_indexes": [],
            "hidden_act": "gelu_pytorch_tanh",
            "initializer_range": 0.02,
            "out_hidden_size": s.hidden,
            **v,
        },
    }


def _qwen35_linear_layer_shapes(prefix: str, s: Shape, la: LinearAttentionShape):
    key_dim, value_dim = la.key_heads * la.key_head_dim, la.value_heads * la.value_head_dim
    conv_dim = 2 * key_dim + value_dim
    return {
        f"{prefix}.input_layernorm.weight": (s.hidden,),
        f"{prefix}.linear_attn.in_proj_qkv.weight": (conv_dim, s.hidden),
        f"{prefix}.linear_attn.in_proj_z.weight": (value_dim, s.hidden),
        f"{prefix}.linear_attn.in_proj_b.weight": (la.value_heads, s.hidden),
        f"{prefix}.linear_attn.in_proj_a.weight": (la.value_heads, s.hidden),
        f"{prefix}.linear_attn.conv1d.weight": (conv_dim, 1, la.conv_kernel),
        f"{prefix}.linear_attn.dt_bias": (la.value_heads,),
        f"{prefix}.linear_attn.A_log": (la.value_heads,),
        f"{prefix}.linear_attn.norm.weight": (la.value_head_dim,),
        f"{prefix}.linear_attn.out_proj.weight": (s.hidden, value_dim),
        **_mlp_shapes(prefix, s),
    }


def _qwen35_full_layer_shapes(prefix: str, s: Shape):
    """Full attention with an output gate: q_proj holds query and gate, interleaved per head."""
    shapes = _decoder_layer_shapes(prefix, s, qk_norm=True)
    shapes[f"{prefix}.self_attn.q_proj.weight"] = (2 * s.heads * s.head_dim, s.hidden)
    return shapes


def _qwen35_vision_shapes(out_hidden: int) -> dict[str, tuple[int, ...]]:
    v = QWEN35_VISION
    h, i, merged = v["hidden_size"], v["intermediate_size"], v["hidden_size"] * 4
    patch = (h, v["in_channels"], v["temporal_patch_size"], v["patch_size"], v["patch_size"])
    shapes = {"model.visual.patch_embed.proj.weight": patch,
              "model.visual.patch_embed.proj.bias": (h,),
              "model.visual.pos_embed.weight": (v["num_position_embeddings"], h)}
    for j in range(v["depth"]):
        b = f"model.visual.blocks.{j}"
        shapes.update({
            f"{b}.norm1.weight": (h,), f"{b}.norm1.bias": (h,),
            f"{b}.norm2.weight": (h,), f"{b}.norm2.bias": (h,),
            f"{b}.attn.qkv.weight": (3 * h, h), f"{b}.attn.qkv.bias": (3 * h,),
            f"{b}.attn.proj.weight": (h, h), f"{b}.attn.proj.bias": (h,),
            f"{b}.mlp.linear_fc1.weight": (i, h), f"{b}.mlp.linear_fc1.bias": (i,),
            f"{b}.mlp.linear_fc2.weight": (h, i), f"{b}.mlp.linear_fc2.bias": (h,),
        })
    m = "model.visual.merger"
    shapes.update({f"{m}.norm.weight": (h,), f"{m}.norm.bias": (h,),
                   f"{m}.linear_fc1.weight": (merged, merged), f"{m}.linear_fc1.bias": (merged,),
                   f"{m}.linear_fc2.weight": (out_hidden, merged),
                   f"{m}.linear_fc2.bias": (out_hidden,)})
    return shapes


def _qwen35_mtp_shapes(s: Shape) -> dict[str, tuple[int, ...]]:
    """The multi-token-prediction head real checkpoints carry (top-level `mtp.*`)."""
    shapes = {"mtp.fc.weight": (s.hidden, 2 * s.hidden), "mtp.norm.weight": (s.hidden,),
              "mtp.pre_fc_norm_embedding.weight": (s.hidden,),
              "mtp.pre_fc_norm_hidden.weight": (s.hidden,)}
    shapes.update(_qwen35_full_layer_shapes("mtp.layers.0", s))
    return shapes


def build_qwen35(
    out: Path,
    *,
    shape: Shape = QWEN35_SHAPE,
    linear: LinearAttentionShape = QWEN35_LINEAR,
    tied: bool = True,
    dtype: str = "BF16",
    max_shard_bytes: int | None = None,
    seed: int = 0,
) -> SyntheticModel:
    """A Qwen3_5ForConditionalGeneration (civic-qa): Gated-DeltaNet linear-attention layers
    with a full-attention layer every fourth, K != V linear heads (so the V-head order
    matters), zero-centred RMSNorms, F32 A_log and gated norm as in the real file, plus a
    vision tower and an MTP head that converters must drop."""
    if linear.value_heads % linear.key_heads:
        raise ValueError("linear value heads must be a multiple of key heads")
    out.mkdir(parents=True, exist_ok=True)
    tok = write_qwen_tokenizer(out, variant="qwen35",
                               chat_template=chat_templates.QWEN35_CHAT_TEMPLATE,
                               vocab_size=shape.vocab)
    config = _qwen35_config(shape, linear, tok, tied, dtype)
    text: dict[str, tuple[int, ...]] = {
        "model.language_model.embed_tokens.weight": (shape.vocab, shape.hidden)}
    for i, kind in enumerate(config["text_config"]["layer_types"]):
        prefix = f"model.language_model.layers.{i}"
        text.update(_qwen35_full_layer_shapes(prefix, shape) if kind == "full_attention"
                    else _qwen35_linear_layer_shapes(prefix, shape, linear))
    text["model.language_model.norm.weight"] = (shape.hidden,)
    if not tied:
        text["lm_head.weight"] = (shape.vocab, shape.hidden)
    special = {}
    for name, dims in text.items():
        if name.endswith("A_log"):
            special[name] = lambda n=name, d=dims: np.log(
                _rng(seed, n).uniform(1.0, 16.0, d)).astype(np.float32)
        elif name.endswith("dt_bias"):
            special[name] = lambda n=name, d=dims: 1.0 + _normal(seed, n, d, 0.1)
        elif name.endswith("linear_attn.norm.weight"):  # gated norm: not zero-centred
            special[name] = lambda n=name, d=dims: _norm_weight(seed, n, d, 1.0)
    tensors = _weights(text, dtype, seed, norm_centre=0.0, special=special)
    tensors = [replace(t, dtype="F32") if t.name.endswith(("A_log", "linear_attn.norm.weight"))
               else t for t in tensors]
    tensors += _weights(_qwen35_vision_shapes(shape.hidden), dtype, seed, norm_centre=1.0)
    tensors += _weights(_qwen35_mtp_shapes(shape), dtype, seed, norm_centre=0.0)
    write_checkpoint(out, tensors, max_shard_bytes=max_shard_bytes)
    _write_json(out / "config.json", config)
    _write_card(out, config["architectures"][0])
    gen = _generation_config(tok, qwen=True)
    gen.update(temperature=1.0, top_k=20, top_p=0.95)
    _write_json(out / "generation_config.json", gen)
    return SyntheticModel(out, "Qwen3_5ForConditionalGeneration", config, tok)


# ---------------------------------------------------------------------------- Llama-2

LLAMA_SHAPE = Shape(hidden=256, intermediate=768, layers=2, heads=4, kv_heads=4, head_dim=64,
                    vocab=1024)


def build_llama(
    out: Path,
    *,
    shape: Shape = LLAMA_SHAPE,
    dtype: str = "F16",
    max_shard_bytes: int | None = None,
    seed: int = 0,
) -> SyntheticModel:
    """A LlamaForCausalLM in the Llama-2-chat mould (general assistant, a full fine-tune):
    SentencePiece tokenizer.model, untied head, and, like Llama-2's config.json, no
    rope_theta and no head_dim (readers must supply transformers' defaults)."""
    out.mkdir(parents=True, exist_ok=True)
    tok = write_llama_tokenizer(out, chat_template=chat_templates.LLAMA2_CHAT_TEMPLATE,
                                vocab_size=shape.vocab)
    if shape.head_dim * shape.heads != shape.hidden:
        raise ValueError("Llama-2 derives head_dim from hidden / heads")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "hidden_act": "silu",
        "hidden_size": shape.hidden,
        "initializer_range": 0.02,
        "intermediate_size": shape.intermediate,
        "max_position_embeddings": 4096,
        "model_type": "llama",
        "num_attention_heads": shape.heads,
        "num_hidden_layers": shape.layers,
        "num_key_value_heads": shape.kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "tie_word_embeddings": False,
        "torch_dtype": _torch_dtype(dtype),
        "use_cache": True,
        "vocab_size": shape.vocab,
    }
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (shape.vocab, shape.hidden)}
    for i in range(shape.layers):
        shapes.update(_decoder_layer_shapes(f"model.layers.{i}", shape, qk_norm=False))
    shapes["model.norm.weight"] = (shape.hidden,)
    shapes["lm_head.weight"] = (shape.vocab, shape.hidden)
    write_checkpoint(out, _weights(shapes, dtype, seed), max_shard_bytes=max_shard_bytes)
    _write_json(out / "config.json", config)
    _write_card(out, "LlamaForCausalLM")
    _write_json(out / "generation_config.json", _generation_config(tok, qwen=False))
    return SyntheticModel(out, "LlamaForCausalLM", config, tok)


# ---------------------------------------------------------------------------- adapters


@dataclass(frozen=True)
class AdapterSpec:
    """The adapter_config.json fields that decide how an adapter merges."""

    r: int = 8
    lora_alpha: int = 8
    target_modules: tuple[str, ...] = ALL_LINEAR
    use_rslora: bool = False
    use_dora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, int] = field(default_factory=dict)
    modules_to_save: tuple[str, ...] = ()
    task_type: str = "CAUSAL_LM"


# The adapter kinds the converter must merge exactly (shared/reference/lora-merge.md).
ADAPTER_KINDS: dict[str, AdapterSpec] = {
    "lora": AdapterSpec(r=8, lora_alpha=8),
    "rslora": AdapterSpec(r=64, lora_alpha=128, use_rslora=True),
    "pattern": AdapterSpec(
        r=8, lora_alpha=16,
        rank_pattern={"self_attn.o_proj": 4, "layers.1.mlp.down_proj": 12},
        alpha_pattern={"layers.1.mlp.down_proj": 48, "k_proj": 4},
    ),
    "embedding": AdapterSpec(r=8, lora_alpha=16, target_modules=("embed_tokens", "q_proj")),
    "dora": AdapterSpec(r=8, lora_alpha=16, target_modules=("q_proj", "v_proj", "down_proj"),
                        use_dora=True),
    "seq_cls": AdapterSpec(r=64, lora_alpha=128, modules_to_save=("score",),
                           task_type="SEQ_CLS"),
}


def _pattern_value(patterns: dict[str, int], module: str, default: int) -> int:
    """peft's rule: the first pattern key k with re.match(rf"(.*\\.)?({k})$", module)."""
    import re

    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _adapter_targets(base: Checkpoint, spec: AdapterSpec) -> list[tuple[str, tuple[int, ...]]]:
    """Module paths (and weight shapes) of the base that the adapter targets, as peft would
    find them: the last path component is in target_modules. Multi-token-prediction and
    vision tensors are not modules of the loaded text model."""
    targets = []
    for name in base.names():
        if not name.endswith(".weight") or name.startswith(("mtp.", "model.visual.")):
            continue
        module = name[: -len(".weight")]
        if module.rsplit(".", 1)[-1] in spec.target_modules:
            targets.append((module, base.info(name).shape))
    return sorted(targets)


def build_adapter(
    out: Path,
    base_dir: Path,
    spec: AdapterSpec,
    *,
    seed: int = 1,
    base_model_name_or_path: str | None = None,
) -> Path:
    """A PEFT LoRA adapter for the checkpoint at `base_dir`, with non-zero A and B (as after
    training), saved as peft's `save_pretrained` lays it out."""
    out.mkdir(parents=True, exist_ok=True)
    tensors: list[PendingTensor] = []
    with Checkpoint(base_dir) as base:
        for module, shape in _adapter_targets(base, spec):
            tensors.extend(_lora_tensors(module, shape, spec, seed))
            if module.endswith("embed_tokens"):
                tensors.append(_embedding_copy(base, module))
        for module in spec.modules_to_save:
            tensors.append(_saved_module(base, module, seed))
    if not tensors:
        raise ValueError(f"adapter targets nothing in {base_dir}")
    write_checkpoint(out, tensors, basename="adapter_model")
    _write_json(out / "adapter_config.json",
                _adapter_config(spec, base_model_name_or_path or str(base_dir)))
    return out


def _lora_tensors(module: str, shape: tuple[int, ...], spec: AdapterSpec, seed: int):
    key = f"base_model.model.{module}"
    r = _pattern_value(spec.rank_pattern, module, spec.r)
    out_dim, in_dim = shape
    if module.endswith("embed_tokens"):
        # Embedding LoRA: A is (r, vocab), B is (hidden, r); no ".weight" suffix.
        yield _tensor(f"{key}.lora_embedding_A", (r, out_dim), "F32",
                      lambda: _normal(seed, f"{key}.A", (r, out_dim), 0.5))
        yield _tensor(f"{key}.lora_embedding_B", (in_dim, r), "F32",
                      lambda: _normal(seed, f"{key}.B", (in_dim, r), 0.05))
        return
    yield _tensor(f"{key}.lora_A.weight", (r, in_dim), "F32",
                  lambda: _normal(seed, f"{key}.A", (r, in_dim), 1 / np.sqrt(in_dim)))
    yield _tensor(f"{key}.lora_B.weight", (out_dim, r), "F32",
                  lambda: _normal(seed, f"{key}.B", (out_dim, r), 0.02))
    if spec.use_dora:
        # The magnitude vector after training: near, not equal to, the row norms of W.
        yield _tensor(f"{key}.lora_magnitude_vector", (out_dim,), "F32",
                      lambda: np.abs(1.0 + _normal(seed, f"{key}.m", (out_dim,), 0.3)))


def _embedding_copy(base: Checkpoint, module: str) -> PendingTensor:
    """peft saves the full embedding next to an embedding LoRA (save_embedding_layers)."""
    values = base.float32(f"{module}.weight")
    return _tensor(f"base_model.model.{module}.base_layer.weight", values.shape, "F32",
                   lambda: values)


def _saved_module(base: Checkpoint, module: str, seed: int) -> PendingTensor:
    """A `modules_to_save` module: a full trained copy that replaces the base tensor."""
    name = f"{module}.weight"
    if name not in base:
        raise ValueError(f"modules_to_save names {module}, absent from the base")
    shape = base.info(name).shape

    def trained() -> np.ndarray:
        return base_copy + _normal(seed, f"saved.{name}", shape)

    base_copy = base.float32(name)
    return _tensor(f"base_model.model.{name}", shape, "F32", trained)


def _adapter_config(spec: AdapterSpec, base_name: str) -> dict:
    """adapter_config.json as peft 0.21 writes it."""
    return {
        "alora_invocation_tokens": None,
        "alpha_pattern": dict(spec.alpha_pattern),
        "arrow_config": None,
        "auto_mapping": None,
        "base_model_name_or_path": base_name,
        "bias": "none",
        "corda_config": None,
        "ensure_weight_tying": False,
        "eva_config": None,
        "exclude_modules": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layer_replication": None,
        "layers_pattern": None,
        "layers_to_transform": None,
        "loftq_config": {},
        "lora_alpha": spec.lora_alpha,
        "lora_bias": False,
        "lora_dropout": 0.05,
        "megatron_config": None,
        "megatron_core": "megatron.core",
        "modules_to_save": list(spec.modules_to_save) or None,
        "peft_type": "LORA",
        "peft_version": "0.21.2",
        "qalora_group_size": 16,
        "r": spec.r,
        "rank_pattern": dict(spec.rank_pattern),
        "revision": None,
        "target_modules": sorted(spec.target_modules),
        "target_parameters": None,
        "task_type": spec.task_type,
        "trainable_token_indices": None,
        "use_dora": spec.use_dora,
        "use_qalora": False,
        "use_rslora": spec.use_rslora,
    }


def with_options(spec: AdapterSpec, **changes: Any) -> AdapterSpec:
    """A copy of an adapter spec with some fields changed (for tests of refusals)."""
    return replace(spec, **changes)
