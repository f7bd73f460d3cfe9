"""Qwen3_5ForConditionalGeneration / Qwen3_5ForCausalLM -> GGUF `qwen35` (text part only).

Qwen3.5 interleaves Gated-DeltaNet linear-attention layers with full-attention layers.
llama.cpp wants, in this order:
1. V heads reordered from grouped-by-K-head (K, r, d) to tiled (r, K, d) when K != V, in
   every linear-attention tensor that has a V-head axis;
2. `A_log` stored as `-exp(A_log)`, `conv1d` squeezed from [C, 1, k] to [C, k];
3. +1 on every zero-centred RMSNorm weight (all `*norm.weight` but the gated
   `linear_attn.norm`).
The vision tower and the multi-token-prediction head are dropped.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gguf
import numpy as np

from converters.errors import InputError
from converters.gguf.architectures.base import Architecture, Hparam, Reordering, register
from converters.gguf.vocab import ByteLevelBPE

_V_AXIS_ROWS = {".linear_attn.in_proj_z.weight": "dv", ".linear_attn.in_proj_a.weight": 1,
                ".linear_attn.in_proj_b.weight": 1, ".linear_attn.A_log": 1,
                ".linear_attn.dt_bias": 1}


def reorder_v_heads(weight: np.ndarray, axis: int, k_heads: int, v_per_k: int,
                    head_dim: int) -> np.ndarray:
    """(K, r, d) -> (r, K, d) along `axis`: grouped V heads to ggml's tiled broadcast order."""
    shape = weight.shape
    if shape[axis] != k_heads * v_per_k * head_dim:
        raise ValueError(f"axis {axis} has {shape[axis]} entries, not {k_heads} x {v_per_k} "
                         f"x {head_dim}")
    split = (*shape[:axis], k_heads, v_per_k, head_dim, *shape[axis + 1:])
    return np.ascontiguousarray(np.swapaxes(weight.reshape(split), axis, axis + 1)).reshape(shape)


@register
class Qwen35(Architecture):
    gguf_arch = "qwen35"
    hf_classes = ("Qwen3_5ForCausalLM", "Qwen3_5ForConditionalGeneration")
    vocabulary = ByteLevelBPE(pre_tokenizer="qwen35")
    hparams: ClassVar[dict[str, Hparam]] = {
        **Architecture.hparams,
        **{field: Hparam("count", required=True) for field in (
            "linear_num_key_heads", "linear_num_value_heads", "linear_conv_kernel_dim",
            "linear_key_head_dim", "linear_value_head_dim")},
        "partial_rotary_factor": Hparam("fraction"), "full_attention_interval": Hparam("count"),
        "mrope_section": Hparam("sections"), "layer_types": Hparam("names"),
    }
    layer_kinds = ("full_attention", "linear_attention")

    @classmethod
    def config_problems(cls, params: dict[str, Any]) -> list[str]:
        problems = super().config_problems(params)
        k, v = params["linear_num_key_heads"], params["linear_num_value_heads"]
        if v % k:
            problems.append(f"linear_num_value_heads {v} is not a multiple of "
                            f"linear_num_key_heads {k}")
        kinds, layers = params["layer_types"], params["num_hidden_layers"]
        if len(kinds) != layers or not set(kinds) <= set(cls.layer_kinds):
            problems.append(f"layer_types must list {layers} entries, each one of "
                            f"{', '.join(cls.layer_kinds)}")
        return problems

    @classmethod
    def fill_defaults(cls, params: dict[str, Any]) -> None:
        super().fill_defaults(params)
        rope = params.get("rope_parameters") or {}
        params.setdefault("partial_rotary_factor", rope.get("partial_rotary_factor", 0.25))
        params.setdefault("full_attention_interval", 4)
        params.setdefault("mrope_section", rope.get("mrope_section", [11, 11, 10]))
        if not params.get("layer_types"):
            interval = params["full_attention_interval"]
            params["layer_types"] = [
                "full_attention" if (i + 1) % interval == 0 else "linear_attention"
                for i in range(params["num_hidden_layers"])
            ]

    @property
    def _k(self) -> int:
        return int(self.config["linear_num_key_heads"])

    @property
    def _v(self) -> int:
        return int(self.config["linear_num_value_heads"])

    def add_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().add_hparams(writer)
        c = self.config
        writer.add_ssm_conv_kernel(int(c["linear_conv_kernel_dim"]))
        writer.add_ssm_state_size(int(c["linear_key_head_dim"]))
        writer.add_ssm_group_count(self._k)
        writer.add_ssm_time_step_rank(self._v)
        writer.add_ssm_inner_size(int(c["linear_value_head_dim"]) * self._v)
        writer.add_full_attention_interval(int(c["full_attention_interval"]))
        writer.add_rope_dimension_count(int(c["head_dim"] * c["partial_rotary_factor"]))
        sections = [*c["mrope_section"], 0, 0, 0, 0][:4]
        writer.add_rope_dimension_sections(sections)
        # gguf 0.19 has no add_recurrent_layers; the loader reads this bool array by name.
        recurrent = [t == "linear_attention" for t in c["layer_types"]]
        writer.add_array(f"{self.gguf_arch}.attention.recurrent_layers", recurrent)

    def hf_name(self, name: str) -> str:
        name = name.replace("model.language_model.", "model.", 1)
        if name.endswith(".linear_attn.dt_bias"):
            return name.removesuffix(".dt_bias") + ".dt_proj.bias"
        return name

    def dropped(self, name: str) -> bool:
        return (
            super().dropped(name)
            or name.startswith(("mtp.", "model.visual.", "model.mtp.", "visual."))
            or "vision_" in name
        )

    def row_local(self, name: str) -> bool:
        return ".linear_attn." not in name

    def output_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        if name.endswith(".linear_attn.conv1d.weight") and len(shape) == 3:
            return (shape[0], shape[2])
        return shape

    def transform(self, name: str, weight: np.ndarray) -> np.ndarray:
        if ".linear_attn." in name and self._k != self._v:
            try:
                weight = self._reorder(name, weight)
            except ValueError as exc:  # shapes that disagree with config.json's head counts
                raise InputError(f"tensor {name} {list(weight.shape)} does not fit config.json's "
                                 f"linear-attention heads ({exc})") from exc
        if name.endswith(".linear_attn.A_log"):
            weight = -np.exp(weight)
        elif name.endswith(".linear_attn.conv1d.weight"):
            weight = weight.reshape(self.output_shape(name, weight.shape))
        elif name.endswith("norm.weight") and not name.endswith("linear_attn.norm.weight"):
            weight = weight + np.float32(1.0)
        return weight

    def reordering(self, name: str, shape: tuple[int, ...]) -> Reordering | None:
        if len(shape) != 2 or name.endswith(".conv1d.weight"):
            return None
        if ".linear_attn." not in name or self._k == self._v:
            return Reordering()
        if name.endswith(".out_proj.weight"):  # V heads along the input columns
            return Reordering(columns=self.transform(name, np.arange(shape[1])[None, :])[0])
        return Reordering(rows=self.transform(name, np.arange(shape[0])))

    def _reorder(self, name: str, weight: np.ndarray) -> np.ndarray:
        dk = int(self.config["linear_key_head_dim"])
        dv = int(self.config["linear_value_head_dim"])
        r = self._v // self._k
        qk_rows = 2 * self._k * dk
        if name.endswith((".in_proj_qkv.weight", ".conv1d.weight")):
            v_part = reorder_v_heads(weight[qk_rows:], 0, self._k, r, dv)
            return np.concatenate([weight[:qk_rows], v_part], axis=0)
        if name.endswith(".out_proj.weight"):
            return reorder_v_heads(weight, 1, self._k, r, dv)
        for suffix, head_dim in _V_AXIS_ROWS.items():
            if name.endswith(suffix):
                return reorder_v_heads(weight, 0, self._k, r, dv if head_dim == "dv" else 1)
        return weight
