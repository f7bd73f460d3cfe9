"""Assistant profiles: what a Modelfile says about an assistant, ready for the engine.

The Modelfile is the single source of truth for the system prompt, template and sampling
(Ollama reads the same file). The intent-safety classifier has no Modelfile (Ollama has no
classification API); its input format and threshold come from `intent-safety.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.errors import InputError
from converters.ollama.modelfile import ModelfileError, ParameterValue, read_modelfile

# api.DefaultOptions() of Ollama v0.33: what Ollama samples with where a Modelfile is silent.
OLLAMA_DEFAULTS: dict[str, int | float] = {
    "num_ctx": 4096, "num_predict": -1, "num_keep": 4, "temperature": 0.8, "top_k": 40,
    "top_p": 0.9, "typical_p": 1.0, "repeat_last_n": 64, "repeat_penalty": 1.0,
    "presence_penalty": 0.0, "frequency_penalty": 0.0, "seed": -1, "min_p": 0.0,
}
# Ollama option -> llama-cpp-python completion argument.
_LLAMA_CPP_NAMES = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
                    "min_p": "min_p", "typical_p": "typical_p",
                    "repeat_penalty": "repeat_penalty", "presence_penalty": "presence_penalty",
                    "frequency_penalty": "frequency_penalty"}


@dataclass(frozen=True)
class AssistantProfile:
    name: str
    modelfile: Path
    model: str  # FROM as written
    model_path: Path | None  # the GGUF FROM names, when it is a file that exists
    system: str | None
    template: str | None
    parameters: Mapping[str, ParameterValue]
    stop: tuple[str, ...]
    messages: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def option(self, name: str) -> Any:
        """A parameter as Ollama would use it: the Modelfile's, else Ollama's default."""
        return self.parameters.get(name, OLLAMA_DEFAULTS.get(name))

    @property
    def n_ctx(self) -> int:
        return int(self.option("num_ctx"))

    def sampling(self) -> dict[str, Any]:
        """llama-cpp-python completion arguments that sample as Ollama would."""
        args = {ours: self.option(theirs) for theirs, ours in _LLAMA_CPP_NAMES.items()}
        seed = int(self.option("seed"))
        if seed >= 0:
            args["seed"] = seed
        limit = int(self.option("num_predict"))
        args["max_tokens"] = limit if limit > 0 else None
        args["stop"] = list(self.stop)
        return args


def _profile_name(path: Path) -> str:
    """models/<name>/Modelfile -> name; modelfiles/<name>.Modelfile -> name."""
    if path.name == "Modelfile":
        return path.resolve().parent.name
    return path.name.removesuffix(".Modelfile")


def _model_path(model: str, directory: Path) -> Path | None:
    """FROM resolved as Ollama resolves it: absolute, ~, or relative to the Modelfile's
    folder; a path that does not exist is taken for a model name."""
    candidate = Path(os.path.expanduser(model))
    if not candidate.is_absolute():
        candidate = directory / candidate
    return candidate.resolve() if candidate.is_file() else None


# The longest context any supported model was trained for (Qwen3.5: 262144 tokens). A
# larger num_ctx would have llama.cpp reserve a cache no laptop holds: the process is killed
# for lack of memory instead of reporting anything.
MAX_NUM_CTX = 262_144


def load_profile(modelfile_path: Path) -> AssistantProfile:
    """Read an assistant's Modelfile; bad files raise ModelfileError (an InputError)."""
    modelfile = read_modelfile(modelfile_path)
    num_ctx = modelfile.parameters.get("num_ctx")
    if isinstance(num_ctx, int) and not 1 <= num_ctx <= MAX_NUM_CTX:
        raise ModelfileError(f"PARAMETER num_ctx {num_ctx}: Amicus needs 1 to {MAX_NUM_CTX}",
                             None, str(modelfile_path))
    return AssistantProfile(
        name=_profile_name(modelfile_path), modelfile=modelfile_path, model=modelfile.from_,
        model_path=_model_path(modelfile.from_, modelfile_path.parent),
        system=modelfile.system, template=modelfile.template,
        parameters=modelfile.parameters, stop=modelfile.stop, messages=modelfile.messages,
        warnings=modelfile.warnings)


@dataclass(frozen=True)
class ClassifierProfile:
    """The intent-safety classifier's input format (seed 002), to the character."""

    input_format_version: str
    task_description: str
    text_template: str
    ctx_line_template: str
    ctx_separator: str
    role_map: Mapping[str, str]
    unknown_role: str
    max_turns: int
    drop_trailing_assistant: bool
    max_tokens: int
    ctx_token_reserve: int
    strip_text: bool
    labels: Mapping[int, str]
    positive_label: int
    threshold: float


_CLASSIFIER_FIELDS = {"input_format_version": str, "task_description": str,
                      "text_template": str, "ctx_line_template": str, "ctx_separator": str,
                      "role_map": dict, "unknown_role": str, "max_turns": int,
                      "drop_trailing_assistant": bool, "max_tokens": int,
                      "ctx_token_reserve": int, "strip_text": bool, "labels": dict,
                      "positive_label": int, "threshold": float}


def load_classifier_profile(path: Path) -> ClassifierProfile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the classifier profile ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: the classifier profile is not a JSON object")
    values: dict[str, Any] = {}
    for name, kind in _CLASSIFIER_FIELDS.items():
        value = data.get(name)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(f"{path}: {name} must be a {kind.__name__}, not {value!r}")
        values[name] = value
    problem = _classifier_problem(values)
    if problem:
        raise InputError(f"{path}: {problem}")
    values["labels"] = {int(k): v for k, v in values["labels"].items()}
    return ClassifierProfile(**values)


def _classifier_problem(values: dict[str, Any]) -> str | None:
    """What makes well-typed classifier settings unusable, if anything."""
    labels, roles = values["labels"], values["role_map"]
    if not all(k.isdigit() and isinstance(v, str) for k, v in labels.items()):
        return "labels must map class numbers (\"0\", \"1\") to names"
    if str(values["positive_label"]) not in labels:
        return f"positive_label {values['positive_label']} is not one of the labels"
    if not all(isinstance(v, str) for v in roles.values()):
        return "role_map must map role names to role names"
    if not 0.0 <= values["threshold"] <= 1.0:  # NaN fails this too
        return f"threshold must be between 0 and 1, not {values['threshold']}"
    for name in ("max_turns", "max_tokens"):
        if values[name] < 1:
            return f"{name} must be at least 1, not {values[name]}"
    if not 0 <= values["ctx_token_reserve"] < values["max_tokens"]:
        return "ctx_token_reserve must be at least 0 and below max_tokens"
    return None
