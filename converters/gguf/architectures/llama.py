"""LlamaForCausalLM -> GGUF `llama` (Llama-2 chat).

llama.cpp's llama uses interleaved rope pairs while Hugging Face rotates halves: q and k
rows are permuted per head so the same rotation lands on the same numbers.
"""

from __future__ import annotations

import gguf
import numpy as np

from converters.gguf.architectures.base import Architecture, register
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

    def row_local(self, name: str) -> bool:
        return ".self_attn.q_proj." not in name and ".self_attn.k_proj." not in name

    def add_hparams(self, writer: gguf.GGUFWriter) -> None:
        super().add_hparams(writer)
        writer.add_vocab_size(int(self.config["vocab_size"]))
        writer.add_rope_dimension_count(int(self.config["head_dim"]))

    def transform(self, name: str, weight: np.ndarray) -> np.ndarray:
        if name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            return permute_rotary(weight, int(self.config["num_attention_heads"]))
        if name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            return permute_rotary(weight, int(self.config["num_key_value_heads"]))
        return weight
