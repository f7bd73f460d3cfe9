"""What every architecture tells the GGUF writer: hyperparameters, names, transforms.

Tensors reach an architecture by their Hugging Face name, already merged, as float32. The
architecture decides whether the tensor is dropped, what it is called in GGUF, how its
values are rearranged for llama.cpp, and whether it must stay F32.
"""

from __future__ import annotations

import gguf
import numpy as np

from converters.errors import InputError
from converters.model_config import ModelConfig

_ALWAYS_F32_SUFFIXES = ("_norm.weight", "ssm_conv1d.weight", "ssm_a", "ssm_dt.bias")


class Architecture:
    """Base: llama.cpp's generic tensor map, no transforms, the hparams all share."""

    gguf_arch: str = ""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.n_layers = int(config["num_hidden_layers"])
        arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == self.gguf_arch)
        self._names = gguf.get_tensor_name_map(arch_enum, self.n_layers)

    # ------------------------------------------------------------------ metadata
    def add_hparams(self, writer: gguf.GGUFWriter) -> None:
        c = self.config
        writer.add_context_length(int(c["max_position_embeddings"]))
        writer.add_embedding_length(int(c["hidden_size"]))
        writer.add_block_count(self.n_layers)
        writer.add_feed_forward_length(int(c["intermediate_size"]))
        writer.add_head_count(int(c["num_attention_heads"]))
        writer.add_head_count_kv(int(c["num_key_value_heads"]))
        writer.add_rope_freq_base(float(c["rope_theta"]))
        writer.add_layer_norm_rms_eps(float(c["rms_norm_eps"]))
        writer.add_key_length(int(c["head_dim"]))
        writer.add_value_length(int(c["head_dim"]))

    # ------------------------------------------------------------------ tensors
    def hf_name(self, name: str) -> str:
        """The name as the generic tensor map knows it."""
        return name

    def dropped(self, name: str) -> bool:
        """Tensors llama.cpp does not use for this model."""
        return name.endswith(".rotary_emb.inv_freq")

    def gguf_name(self, name: str) -> str:
        mapped = self._names.get_name(self.hf_name(name), try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise InputError(f"tensor {name} has no GGUF name for architecture {self.gguf_arch}")
        return mapped

    def output_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def transform(self, name: str, weight: np.ndarray) -> np.ndarray:
        return weight

    def row_local(self, name: str) -> bool:
        """True when transforming rows [a, b) of a tensor gives rows [a, b) of the
        transformed tensor, so it can be streamed in row blocks."""
        return True

    def keeps_f32(self, gguf_name: str, ndim: int) -> bool:
        """1-D tensors, norms and the SSM parameters stay F32, as llama.cpp expects."""
        return ndim == 1 or gguf_name.endswith(_ALWAYS_F32_SUFFIXES) or not (
            gguf_name.endswith(".weight"))
