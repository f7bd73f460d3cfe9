"""A checkpoint's config.json, read without transformers.

Multimodal checkpoints (Qwen3.5) keep their text hyperparameters under `text_config`; they
are merged into the top level as llama.cpp's converter does. Defaults that transformers
would supply for fields a config leaves out come from the architecture's family (the
registry in converters/gguf/architectures), so every later step reads one flat, complete
dictionary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
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
    """Read and validate `config.json`; unsupported architectures are refused by name, and
    every field the family reads is checked (kind and range) before anything uses it."""
    path = directory / "config.json"
    if not path.is_file():
        raise InputError(f"{directory}: no config.json (is this a Hugging Face checkpoint?)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{path}: not a JSON object")
    architecture, family = _architecture(path, raw.get("architectures"))
    text_config = raw.get("text_config")
    if not isinstance(text_config, (dict, type(None))):
        raise InputError(f"{path}: text_config must be an object, not {text_config!r}")
    params = {k: v for k, v in raw.items() if k != "text_config"}
    params.update(text_config or {})
    # A null field means "the default", as a missing one does.
    params = {k: v for k, v in params.items() if v is not None}
    missing = [k for k, field in family.hparams.items() if field.required and k not in params]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
    _check_kinds(path, params, family)
    family.fill_defaults(params)
    _check_kinds(path, params, family)  # the defaults derived from the fields given
    problems = family.config_problems(params)
    if problems:
        raise InputError(f"{path}: {problems[0]}")
    return ModelConfig(architecture, params)


def _architecture(path: Path, architectures: object) -> tuple[str, type[Architecture]]:
    names = architectures if isinstance(architectures, list) else []
    for name in names:
        family = family_of(name) if isinstance(name, str) else None
        if family is not None:
            return name, family
    supported = ", ".join(supported_classes())
    found = ", ".join(map(str, names)) or repr(architectures)
    raise InputError(f"{path}: unsupported architecture {found}; supported: {supported}")


# The largest finite float32: a GGUF stores these hyperparameters as float32.
_FLOAT32_MAX = 3.4028234663852886e38
_INT32_LIMIT = 2**31  # counts are 32-bit fields in GGUF, read as int32 by llama.cpp
MAX_LAYERS = 512  # llama.cpp's LLAMA_MAX_LAYERS: a model with more does not load


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


# Each kind a family's Hparam may name: the test, and what the value must be.
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "count": (lambda v: _integer(v) and 1 <= v < _INT32_LIMIT, "a positive integer"),
    "layers": (lambda v: _integer(v) and 1 <= v <= MAX_LAYERS,
               f"an integer from 1 to {MAX_LAYERS} (llama.cpp's limit)"),
    "positive": (lambda v: _number(v) and 0 < v <= _FLOAT32_MAX, "a positive number"),
    "fraction": (lambda v: _number(v) and 0 < v <= 1, "a number above 0 and at most 1"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "object": (lambda v: isinstance(v, dict), "an object"),
    "sections": (lambda v: isinstance(v, list) and len(v) <= 4 and all(
        _integer(x) and 0 <= x < _INT32_LIMIT for x in v),
        "a list of at most 4 non-negative integers"),
    "names": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
              "a list of strings"),
}


def _check_kinds(path: Path, params: dict[str, Any], family: type[Architecture]) -> None:
    for name, field in family.hparams.items():
        if name in params:
            test, expected = _KINDS[field.kind]
            if not test(params[name]):
                shown = json.dumps(params[name])
                shown = shown if len(shown) <= 40 else shown[:37] + "..."
                raise InputError(f"{path}: {name} must be {expected}, not {shown}")
