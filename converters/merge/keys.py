"""Adapter tensor names -> base tensor names.

An adapter key names a module of the training model and a role (lora_A, lora_B, a DoRA
magnitude, a saved replacement...). The same text model sits under different wrapper
prefixes in different architectures (model.*, model.language_model.*), so a key is matched
to the one base tensor with the same name once the wrapper is set aside.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from converters.errors import InputError
from converters.merge.adapter_config import AdapterConfig

HEAD = "lm_head.weight"
_PEFT_PREFIX = "base_model.model."

# Prefixes under which the same text model sits in different architectures: transformers 5
# multimodal (Qwen3.5: model.language_model.*), transformers 4 multimodal
# (language_model.model.*), and plain causal LMs (model.*). Longest first.
_WRAPPER_PREFIXES = (
    "model.language_model.",
    "language_model.model.",
    "model.text_model.",
    "language_model.",
    "model.",
)

# Adapter key suffixes -> (role, parameter of the module). Legacy files carry ".default".
_ROLES: tuple[tuple[str, str, str | None], ...] = (
    (r"\.lora_A(?:\.default)?\.weight", "A", "weight"),
    (r"\.lora_B(?:\.default)?\.weight", "B", "weight"),
    (r"\.lora_B(?:\.default)?\.bias", "lora_bias", "bias"),
    (r"\.lora_embedding_A(?:\.default)?", "emb_A", "weight"),
    (r"\.lora_embedding_B(?:\.default)?", "emb_B", "weight"),
    (r"\.lora_magnitude_vector(?:\.default)?(?:\.weight)?", "magnitude", "weight"),
    (r"\.token_adapter\.trainable_tokens_delta(?:\.default)?", "tokens", "weight"),
    (r"\.modules_to_save\.default\.(?P<param>weight|bias)", "replace", None),
    (r"\.base_layer\.(?P<param>weight|bias)", "copy", None),
    (r"\.(?P<param>weight|bias)", "plain", None),
)
_ROLE_PATTERNS = [(re.compile(rf"^(?P<module>.+?){suffix}$"), role, param)
                  for suffix, role, param in _ROLES]

_EMBEDDING_MODULES = ("embed_tokens", "lm_head")  # peft's EMBEDDING_LAYER_NAMES
_CLASSIFIER_HEADS = ("score", "classifier")  # peft's SEQ_CLS_HEAD_NAMES, saved whole


def core_name(name: str) -> str:
    """A tensor name without the wrapper prefix that differs between architectures."""
    for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def tied_embedding(base_names: Mapping[str, object] | list[str]) -> str | None:
    """The input embedding an absent lm_head.weight is tied to, or None (the base has its own
    lm_head, is a classifier, or has no single token embedding)."""
    names = list(base_names)
    # A sequence classifier has no language-model head to tie (its config may still say so).
    if HEAD in names or any(core_name(n).split(".")[0] in _CLASSIFIER_HEADS for n in names):
        return None
    embeddings = [n for n in names if core_name(n) == "embed_tokens.weight"]
    return embeddings[0] if len(embeddings) == 1 else None


class Resolver:
    """Finds the base tensor an adapter module path names, across wrapper prefixes."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], where: str) -> None:
        self.shapes = shapes
        self.where = where
        self.by_core: dict[str, list[str]] = {}
        for name in shapes:
            self.by_core.setdefault(core_name(name), []).append(name)

    def resolve(self, key: str, name: str) -> str:
        if name in self.shapes:
            return name
        candidates = self.by_core.get(core_name(name), [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise InputError(f"{self.where}: tensor {key} matches several base tensors "
                             f"({', '.join(sorted(candidates))})")
        raise InputError(f"{self.where}: tensor {key} matches no base tensor ({name} not found; "
                         "adapter for another base?)")


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Key:
    key: str  # as in the file
    module: str  # module path in the training model
    role: str
    param: str  # the module's parameter it concerns: "weight" or "bias"


def parse_key(key: str, config: AdapterConfig, where: str) -> Key:
    path = key.removeprefix(_PEFT_PREFIX)
    for pattern, role, param in _ROLE_PATTERNS:
        match = pattern.match(path)
        if match is None:
            continue
        module = match.group("module")
        param = param or match.group("param")
        if role == "plain":
            plain = _plain_role(module, param, config)
            if plain is None:
                raise InputError(f"{where}: tensor {key} is neither a LoRA tensor nor a module "
                                 "in modules_to_save (unexpected key)")
            role = plain
        return Key(key, module, role, param)
    raise InputError(f"{where}: tensor {key} is not a LoRA tensor (unexpected key)")


def _plain_role(module: str, param: str, config: AdapterConfig) -> str | None:
    """A key without a LoRA suffix: a saved module (modules_to_save, or a classifier head,
    which peft adds to modules_to_save itself), a trained bias (bias="all"/"lora_only"), or
    an embedding peft saved because the vocabulary was resized."""
    if any(re.match(rf"(^|.*\.){re.escape(m)}($|\..*)", module) for m in config.modules_to_save):
        return "replace"
    if param == "bias" and config.bias != "none":
        return "replace"
    if module.rsplit(".", 1)[-1] in (*_EMBEDDING_MODULES, *_CLASSIFIER_HEADS):
        return "replace"
    return None
