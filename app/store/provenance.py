"""Provenance: which model, which file and which settings produced an answer.

A legal answer is only usable if one can say what wrote it. Every assistant message (and
every `ask --json`, `audit` and `classify` result) carries one `Provenance`: the assistant,
the model file (name, sha256 and size from its manifest, quantization and the importance
matrix that calibrated it, demo flag, the
verification state and whether it was used anyway although it failed), where it ran (the
embedded engine with its threads and GPU layers, or a server's URL and model name), the
context size, the sampling parameters, the system prompt and the Amicus version.

The record is plain data, built by app.assistants.provenance and stored as JSON with the
message; `from_dict` reads records written by older or newer versions (unknown keys are
ignored, missing ones take their defaults), and `describe` gives the lines that exports and
the app's details view show.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

BackendKind = Literal["embedded", "endpoint"]


@dataclass(frozen=True)
class ModelFile:
    """The model file an answer came from, as its manifest and verification describe it."""

    name: str  # the installed model's name (its folder under models/)
    file: str  # the GGUF's file name
    sha256: str | None = None
    size: int | None = None  # bytes
    quantization: str | None = None
    demo: bool = False  # random-weight stand-in: its text is meaningless
    verification: str = "not verified"  # verified | not verified | changed | FAILED
    used_anyway: bool = False  # verification had FAILED and the user chose to use it
    # How the quantization was calibrated, as the manifest says (converters.verify.summary:
    # "collected (civic-qa), 7 x 512 tokens", "file (x.gguf), ...", "off (...)"); None for
    # manifests written before importance matrices existed.
    importance_matrix: str | None = None


@dataclass(frozen=True)
class Backend:
    """Where the answer was computed."""

    kind: BackendKind
    threads: int | None = None  # embedded: CPU threads of this generation
    adaptive_threads: bool = False  # embedded: threads follow the CPU load
    gpu_layers: int | None = None  # embedded: layers offloaded (0: CPU only)
    total_layers: int | None = None
    url: str | None = None  # endpoint: the server's base URL
    server_model: str | None = None  # endpoint: the model name sent to the server

    def describe(self) -> str:
        if self.kind == "endpoint":
            model = f", model {self.server_model}" if self.server_model else ""
            return f"server {self.url}{model}"
        where = (f"GPU {self.gpu_layers}/{self.total_layers} layers" if self.gpu_layers
                 else "CPU")
        # Adaptive threads change with the machine's load from one reply to the next: the
        # setting is what describes a reply (the count stays in the record).
        if self.adaptive_threads or self.threads is None:
            return f"embedded llama.cpp · {where} · adaptive threads"
        noun = "thread" if self.threads == 1 else "threads"
        return f"embedded llama.cpp · {where} · {self.threads} {noun}"


@dataclass(frozen=True)
class Provenance:
    assistant: str
    model: ModelFile
    backend: Backend
    amicus_version: str
    num_ctx: int | None = None
    # By Ollama name (temperature, top_p, repeat_penalty, num_predict, stop...): what the
    # embedded engine sampled with, or the fields sent to a server (its defaults for others).
    sampling: dict[str, Any] = field(default_factory=dict)
    think: bool | None = None  # thinking asked on/off; None: the template's default
    system_prompt: str | None = None
    classifier: dict[str, Any] | None = None  # intent-safety: threshold, input format

    @property
    def label(self) -> str:
        """A short name for where answers came from, e.g. for `conversations.model`."""
        if self.backend.kind == "endpoint":
            return f"{self.backend.server_model or self.model.name} @ {self.backend.url}"
        return self.model.file

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, sort_keys=True,
                          allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Read a stored record; keys this version does not know are ignored. TypeError
        for a record of another shape than Amicus writes (a damaged database: a list for the
        sampling, a number for the model), which the export and details view cannot show."""
        values = _known(cls, data)
        values["model"] = ModelFile(**_known(ModelFile, data.get("model") or {}))
        values["backend"] = Backend(**_known(Backend, data.get("backend") or {"kind": "?"}))
        return _checked(cls(**values))

    @classmethod
    def from_json(cls, text: str | None) -> Provenance | None:
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls.from_dict(data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            return None  # a damaged record must not make the conversation unreadable

    def describe(self) -> list[tuple[str, str]]:
        """(label, value) lines for an export or the app's details view, in a fixed order;
        two records differ where their lines differ."""
        model = self.model
        lines = [("Assistant", self.assistant), ("Model", _model_line(model))]
        if model.sha256:
            lines.append(("SHA-256", model.sha256))
        if model.importance_matrix:
            lines.append(("Importance matrix", model.importance_matrix))
        lines.append(("Verification", _verification_line(model)))
        lines.append(("Backend", self.backend.describe()))
        if self.num_ctx is not None:
            lines.append(("Context", f"{self.num_ctx} tokens"))
        if self.sampling:
            lines.append(("Sampling", sampling_line(self.sampling)))
        if self.classifier:
            lines.append(("Classifier", sampling_line(self.classifier)))
        if self.think is not None:
            lines.append(("Thinking", "on" if self.think else "off"))
        lines.append(("System prompt", "(none)" if self.system_prompt is None
                      else _one_line(self.system_prompt)))
        lines.append(("Amicus", self.amicus_version))
        return lines


def sampling_line(values: Mapping[str, Any]) -> str:
    """`temperature 0.2 · top_p 0.9 · stop ["<|im_end|>"]`, keys sorted."""
    return " · ".join(f"{key} {json.dumps(value, ensure_ascii=False)}"
                      for key, value in sorted(values.items()))


def _model_line(model: ModelFile) -> str:
    parts = [model.name, model.file]
    if model.quantization:
        parts.append(model.quantization)
    if model.size is not None:
        parts.append(f"{model.size:,} bytes")  # exact (traceable), grouped to be read
    if model.demo:
        parts.append("DEMO (random weights: meaningless text)")
    return " · ".join(parts)


def _verification_line(model: ModelFile) -> str:
    if model.used_anyway:
        return f"{model.verification}: used anyway"
    return model.verification


def _one_line(text: str) -> str:
    return " ⏎ ".join(line.strip() for line in text.strip().splitlines()) or '""'


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"{cls.__name__} is a {type(data).__name__}, not an object")
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def _checked(record: Provenance) -> Provenance:
    _check_fields(record)
    return record


def _check_fields(record: object) -> None:
    """TypeError unless each field of `record` (a dataclass above, and those it holds)
    holds the type it declares."""
    hints = _hints(type(record))
    for item in fields(record):  # type: ignore[arg-type]
        value = getattr(record, item.name)
        if not _fits(value, hints[item.name]):
            raise TypeError(f"{type(record).__name__}.{item.name} is a "
                            f"{type(value).__name__}")
        if is_dataclass(value):
            _check_fields(value)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The field types `cls` declares (resolved once: records are read by the hundred)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _fits(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arm) for arm in get_args(hint))
    if origin is Literal:  # a kind a newer Amicus may add: any text
        return isinstance(value, str)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is int:  # bool is an int to Python, not to JSON
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)
