"""A checkpoint's config.json, read without transformers.

Multimodal checkpoints (Qwen3.5) keep their text hyperparameters under `text_config`; they
are merged into the top level as llama.cpp's converter does. Defaults that transformers
would supply for fields a config leaves out are filled in here, so every later step reads
one flat, complete dictionary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.errors import InputError

# Hugging Face architecture -> GGUF architecture we write.
SUPPORTED_ARCHITECTURES: dict[str, str] = {
    "Qwen3ForCausalLM": "qwen3",
    "Qwen3ForSequenceClassification": "qwen3",
    "Qwen3_5ForCausalLM": "qwen35",
    "Qwen3_5ForConditionalGeneration": "qwen35",
    "LlamaForCausalLM": "llama",
}
CLASSIFIER_ARCHITECTURES = frozenset({"Qwen3ForSequenceClassification"})


@dataclass(frozen=True)
class ModelConfig:
    """The flat hyperparameters of a supported checkpoint."""

    architecture: str  # Hugging Face class name, e.g. "Qwen3ForCausalLM"
    params: dict[str, Any]

    @property
    def gguf_arch(self) -> str:
        return SUPPORTED_ARCHITECTURES[self.architecture]

    @property
    def is_classifier(self) -> bool:
        return self.architecture in CLASSIFIER_ARCHITECTURES

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
    architecture = next((a for a in architectures if a in SUPPORTED_ARCHITECTURES), None)
    if architecture is None:
        supported = ", ".join(SUPPORTED_ARCHITECTURES)
        found = ", ".join(architectures) or "none"
        raise InputError(f"{path}: unsupported architecture {found}; supported: {supported}")
    params = {k: v for k, v in raw.items() if k != "text_config"}
    params.update(raw.get("text_config") or {})
    _fill_defaults(params, SUPPORTED_ARCHITECTURES[architecture])
    _require(path, params, ("hidden_size", "num_hidden_layers", "num_attention_heads",
                            "intermediate_size", "vocab_size"))
    return ModelConfig(architecture, params)


def _fill_defaults(params: dict[str, Any], arch: str) -> None:
    """What transformers assumes when a config leaves a field out."""
    params.setdefault("num_key_value_heads", params.get("num_attention_heads"))
    if params.get("head_dim") is None and params.get("num_attention_heads"):
        params["head_dim"] = params["hidden_size"] // params["num_attention_heads"]
    rope = params.get("rope_parameters") or {}
    if params.get("rope_theta") is None:
        params["rope_theta"] = rope.get("rope_theta", 10000.0)
    params.setdefault("rms_norm_eps", 1e-6 if arch != "llama" else 1e-5)
    params.setdefault("max_position_embeddings", 4096 if arch == "llama" else 32768)
    params.setdefault("tie_word_embeddings", arch != "llama")
    if arch == "qwen35":
        params.setdefault("partial_rotary_factor", rope.get("partial_rotary_factor", 0.25))
        params.setdefault("full_attention_interval", 4)
        params.setdefault("mrope_section", rope.get("mrope_section", [11, 11, 10]))
        if not params.get("layer_types"):
            interval = params["full_attention_interval"]
            params["layer_types"] = [
                "full_attention" if (i + 1) % interval == 0 else "linear_attention"
                for i in range(params["num_hidden_layers"])
            ]


def _require(path: Path, params: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if params.get(k) is None]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
