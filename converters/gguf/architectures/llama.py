"""LlamaForCausalLM -> GGUF `llama` (Llama-2 chat).

llama.cpp's llama uses interleaved rope pairs while Hugging Face rotates halves: q and k
rows are permuted per head so the same rotation lands on the same numbers.
"""

from __future__ import annotations

from typing import Any

import gguf
import numpy as np

from converters.errors import InputError
from converters.gguf.architectures.base import Architecture, Reordering, register
from converters.gguf.vocab import SentencePiece


def permute_rotary(weight: np.ndarray, heads: int) -> np.ndarray:
    """Rotate-half layout -> interleaved pairs, for each of `heads` heads (rows or bias)."""
    rows = weight.shape[0]
    rest = weight.shape[1:]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *rest)
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


@register
class Llama(Architecture):
    gguf_arch = "llama"
    hf_classes = ("LlamaForCausalLM",)
    vocabulary = SentencePiece()
    # Llama-2's config: no rope_theta/head_dim, 4096 positions, its own lm_head.
    default_rms_norm_eps = 1e-5
    default_context_length = 4096
    default_tie_word_embeddings = False

    @classmethod
    def config_problems(cls, params: dict[str, Any]) -> list[str]:
        problems = super().config_problems(params)
        if params["head_dim"] % 2:
            problems.append(f"head_dim {params['head_dim']} is odd: rotary pairs need an "
                            "even head_dim")
        return problems

    def row_local(self, name: str) -> bool:
        return ".self_attn.q_proj." not in name and ".self_attn.k_proj." not in name

    def add_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().add_hparams(writer)
        writer.add_vocab_size(int(self.config["vocab_size"]))
        writer.add_rope_dimension_count(int(self.config["head_dim"]))

    def transform(self, name: str, weight: np.ndarray) -> np.ndarray:
        if name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            return self._permuted(name, weight, "num_attention_heads")
        if name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            return self._permuted(name, weight, "num_key_value_heads")
        return weight

    def reordering(self, name: str, shape: tuple[int, ...]) -> Reordering | None:
        if len(shape) != 2:
            return None
        if name.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight")):
            return Reordering(rows=self.transform(name, np.arange(shape[0])))
        return Reordering()

    def _permuted(self, name: str, weight: np.ndarray, heads_field: str) -> np.ndarray:
        heads, head_dim = int(self.config[heads_field]), int(self.config["head_dim"])
        if weight.shape[0] != heads * head_dim:
            raise InputError(f"tensor {name} has {weight.shape[0]} rows, but config.json's "
                             f"{heads_field} {heads} x head_dim {head_dim} make "
                             f"{heads * head_dim}")
        return permute_rotary(weight, heads)
