"""What every architecture declares: the registry, and the base class of the families.

A family (one module beside this one) registers itself with `@register` and declares, in
one place, everything the pipeline needs to know about it: the Hugging Face class names it
accepts (and which of them are classifiers), the config defaults transformers assumes, its
vocabulary (byte-level BPE with a pre-tokenizer, or SentencePiece), the hyperparameters it
writes, and its tensor names and transforms. No other module tests an architecture's name.

Tensors reach an architecture by their Hugging Face name, already merged, as float32. The
architecture decides whether the tensor is dropped, what it is called in GGUF, how its
values are rearranged for llama.cpp, and whether it must stay F32.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import gguf
import numpy as np

from converters.errors import InputError
from converters.gguf.vocab import Vocabulary

if TYPE_CHECKING:
    from converters.checkpoint.config import ModelConfig

_ALWAYS_F32_SUFFIXES = ("_norm.weight", "ssm_conv1d.weight", "ssm_a", "ssm_dt.bias")
_BY_HF_CLASS: dict[str, type[Architecture]] = {}
_LAYER_INDEX = re.compile(r"(?:^|\.)layers\.(\d+)\.")


@dataclass(frozen=True)
class Reordering:
    """A permutation of a weight's rows and of its columns (None: kept in order)."""

    rows: np.ndarray | None = None
    columns: np.ndarray | None = None


@dataclass(frozen=True)
class Hparam:
    """A config.json field a family reads: the kind of value it must hold (the kinds are
    converters.checkpoint.config's) and whether config.json must give it (the others have
    defaults). Every field is checked before any is used."""

    kind: str
    required: bool = False


def register(family: type[Architecture]) -> type[Architecture]:
    """Class decorator: make `family` convert the Hugging Face classes it names."""
    for hf_class in family.hf_classes:
        if hf_class in _BY_HF_CLASS:
            raise ValueError(f"{hf_class} is registered twice ({_BY_HF_CLASS[hf_class]}, "
                             f"{family})")
        _BY_HF_CLASS[hf_class] = family
    return family


def family_of(hf_class: str) -> type[Architecture] | None:
    """The registered family that converts `hf_class`, or None."""
    return _BY_HF_CLASS.get(hf_class)


def supported_classes() -> tuple[str, ...]:
    return tuple(_BY_HF_CLASS)


class Architecture:
    """Base: llama.cpp's generic tensor map, no transforms, the hparams all share."""

    gguf_arch: ClassVar[str] = ""
    hf_classes: ClassVar[tuple[str, ...]] = ()
    classifier_classes: ClassVar[frozenset[str]] = frozenset()
    vocabulary: ClassVar[Vocabulary]
    # What transformers assumes when config.json leaves these out.
    default_rms_norm_eps: ClassVar[float] = 1e-6
    default_context_length: ClassVar[int] = 32768
    default_tie_word_embeddings: ClassVar[bool] = True
    # The config.json fields the base reads; families add theirs.
    hparams: ClassVar[dict[str, Hparam]] = {
        "hidden_size": Hparam("count", required=True),
        "num_hidden_layers": Hparam("layers", required=True),
        "num_attention_heads": Hparam("count", required=True),
        "intermediate_size": Hparam("count", required=True),
        "vocab_size": Hparam("count", required=True),
        "num_key_value_heads": Hparam("count"),
        "head_dim": Hparam("count"),
        "rope_parameters": Hparam("object"),
        "rope_theta": Hparam("positive"),
        "rms_norm_eps": Hparam("positive"),
        "max_position_embeddings": Hparam("count"),
        "tie_word_embeddings": Hparam("bool"),
    }

    @classmethod
    def config_problems(cls, params: dict[str, Any]) -> list[str]:
        """What is inconsistent in a complete config whose fields have the right kinds."""
        heads, kv_heads = params["num_attention_heads"], params["num_key_value_heads"]
        if heads % kv_heads:
            return [f"num_attention_heads {heads} is not a multiple of num_key_value_heads "
                    f"{kv_heads}"]
        return []

    @classmethod
    def fill_defaults(cls, params: dict[str, Any]) -> None:
        """Complete a flat config in place with transformers' defaults for this family."""
        params.setdefault("num_key_value_heads", params.get("num_attention_heads"))
        if params.get("head_dim") is None and params.get("num_attention_heads"):
            params["head_dim"] = params["hidden_size"] // params["num_attention_heads"]
        rope = params.get("rope_parameters") or {}
        if params.get("rope_theta") is None:
            params["rope_theta"] = rope.get("rope_theta", 10000.0)
        params.setdefault("rms_norm_eps", cls.default_rms_norm_eps)
        params.setdefault("max_position_embeddings", cls.default_context_length)
        params.setdefault("tie_word_embeddings", cls.default_tie_word_embeddings)

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.n_layers = int(config["num_hidden_layers"])
        arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == self.gguf_arch)
        self._names = gguf.get_tensor_name_map(arch_enum, self.n_layers)

    def check_weights(self, names: Iterable[str], shape_of: Callable[[str], tuple[int, ...]],
                      embedding: str) -> None:
        """The checkpoint's tensors agree with the config on what the GGUF records:
        exactly layers 0..num_hidden_layers-1, and an embedding hidden_size wide."""
        layers = {int(m.group(1)) for m in map(_LAYER_INDEX.search,
                                               (n for n in names if not self.dropped(n))) if m}
        if layers != set(range(self.n_layers)):
            found = f"{min(layers)}..{max(layers)} ({len(layers)} layers)" if layers else "none"
            raise InputError(f"config.json says num_hidden_layers {self.n_layers}, but the "
                             f"checkpoint's layers are {found}")
        hidden, shape = int(self.config["hidden_size"]), shape_of(embedding)
        if len(shape) != 2 or shape[1] != hidden:
            raise InputError(f"tensor {embedding} is {list(shape)}, but config.json says "
                             f"hidden_size {hidden}")

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

    def reordering(self, name: str, shape: tuple[int, ...]) -> Reordering | None:
        """What `transform` does to the 2-D weight `name` of `shape` when it only reorders
        its rows and columns (None when it does anything else): a low-rank change B @ A
        of the weight then reaches GGUF as B[rows] @ A[:, columns] (the quality report's
        unmerging adapter). A family that overrides `transform` overrides this too
        (tests/converters/gguf/test_reordering.py holds the two together)."""
        return Reordering() if len(shape) == 2 else None

    def row_local(self, name: str) -> bool:
        """True when transforming rows [a, b) of a tensor gives rows [a, b) of the
        transformed tensor, so it can be streamed in row blocks."""
        return True

    def keeps_f32(self, gguf_name: str, ndim: int) -> bool:
        """1-D tensors, norms and the SSM parameters stay F32, as llama.cpp expects."""
        return ndim == 1 or gguf_name.endswith(_ALWAYS_F32_SUFFIXES) or not (
            gguf_name.endswith(".weight"))
