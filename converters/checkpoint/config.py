"""A checkpoint's config.json, read without transformers.

Multimodal checkpoints (Qwen3.5) keep their text hyperparameters under `text_config`; they
are merged into the top level as llama.cpp's converter does. Defaults that transformers
would supply for fields a config leaves out come from the architecture's family (the
registry in converters/gguf/architectures), so every later step reads one flat, complete
dictionary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.errors import InputError
from converters.gguf.architectures import Architecture, family_of, supported_classes


@dataclass(frozen=True)
class ModelConfig:
    """The flat hyperparameters of a supported checkpoint."""

    architecture: str  # Hugging Face class name, e.g. "Qwen3ForCausalLM"
    params: dict[str, Any]

    @property
    def family(self) -> type[Architecture]:
        family = family_of(self.architecture)
        assert family is not None, "read_model_config accepts registered classes only"
        return family

    @property
    def gguf_arch(self) -> str:
        return self.family.gguf_arch

    @property
    def is_classifier(self) -> bool:
        return self.architecture in self.family.classifier_classes

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


def read_model_config(directory: Path) -> ModelConfig:
    """Read and validate `config.json`; unsupported architectures are refused by name."""
    path = directory / "config.json"
    if not path.is_file():
        raise InputError(f"{directory}: no config.json (is this a Hugging Face checkpoint?)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    architectures = raw.get("architectures") or []
    architecture = next((a for a in architectures if family_of(a) is not None), None)
    if architecture is None:
        supported = ", ".join(supported_classes())
        found = ", ".join(architectures) or "none"
        raise InputError(f"{path}: unsupported architecture {found}; supported: {supported}")
    params = {k: v for k, v in raw.items() if k != "text_config"}
    params.update(raw.get("text_config") or {})
    family = family_of(architecture)
    assert family is not None
    family.fill_defaults(params)
    _require(path, params, ("hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "vocab_size"))
    return ModelConfig(architecture, params)


def _require(path: Path, params: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if params.get(k) is None]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
