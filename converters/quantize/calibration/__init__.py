"""Calibration text: what the F16 model reads while the importance matrix is collected, and
the held-out text the quality report compares the models on.

One set per assistant ships with Amicus (`<name>.json` beside this file, written for this
project; the catalog's recipes name each assistant's set). A set holds `calibration` and
`held_out` samples, never the same text:
- chat sets: conversations ({role, content} lists), rendered through the model's own chat
  template, behind the assistant's system prompt when its Modelfile has one;
- classifier sets: dialogues in seed 002's ctx format (`[role] text` lines), wrapped in the
  classifier's text template (task description, then `ctx:`) when its input-format file
  is given.
`--calibration FILE` replaces the calibration part with one's own plain text, read as
llama-imatrix reads its text file (special tokens left as text); the rendered sets are
read as `llama-imatrix --parse-special` would read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.chat_render import render_chat
from converters.errors import InputError

SETS_DIR = Path(__file__).resolve().parent
# The set a conversion uses when nobody names one: a general chat set, or the only
# classifier set Amicus has.
DEFAULT_SETS = {"chat": "general", "classifier": "intent-safety"}
Sample = Any  # a conversation (list of {role, content}) or a ctx text


@dataclass(frozen=True)
class CalibrationSet:
    name: str
    kind: str  # "chat" or "classifier"
    calibration: tuple[Sample, ...]
    held_out: tuple[Sample, ...]


@dataclass(frozen=True)
class CalibrationText:
    """Text for the importance matrix, and how to tokenize it."""

    text: str
    dataset: str  # recorded in the imatrix file (imatrix.datasets)
    parse_special: bool


def chunks(tokens: Sequence[int], size: int, bos: int | None,
           keep_tail: bool = False) -> list[list[int]]:
    """llama-imatrix's chunking: consecutive chunks of `size` tokens (the rest dropped
    unless `keep_tail`), the first token of each replaced by BOS where the vocabulary adds
    one."""
    stop = len(tokens) if keep_tail else len(tokens) // size * size
    out = []
    for start in range(0, stop, size):
        chunk = list(tokens[start:start + size])
        if bos is not None:
            chunk[0] = bos
        out.append(chunk)
    return out


def set_names() -> list[str]:
    return sorted(p.stem for p in SETS_DIR.glob("*.json"))


def load_set(name: str) -> CalibrationSet:
    path = SETS_DIR / f"{name}.json"
    if not path.is_file():
        raise InputError(f"no calibration set {name!r}; shipped: {', '.join(set_names())}")
    data = json.loads(path.read_text(encoding="utf-8"))
    return CalibrationSet(name=data["name"], kind=data["kind"],
                          calibration=tuple(data["calibration"]),
                          held_out=tuple(data["held_out"]))


def default_set(classifier: bool) -> str:
    return DEFAULT_SETS["classifier" if classifier else "chat"]


def read_calibration_file(path: Path) -> CalibrationText:
    """One's own calibration text: UTF-8 plain text, tokenized as llama-imatrix does."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"--calibration {path}: cannot read it ({exc.strerror})") from exc
    if b"\0" in raw:
        raise InputError(f"--calibration {path}: a binary file, not plain text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"--calibration {path}: not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise InputError(f"--calibration {path}: the file is empty")
    return CalibrationText(text=text, dataset=str(path), parse_special=False)


@dataclass(frozen=True)
class Formatter:
    """How samples become the text a model reads (see the module docstring)."""

    chat_template: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    system: str | None = None
    text_template: str | None = None  # the classifier's, with {task_description} {ctx_text}
    task_description: str = ""

    def render(self, sample: Sample) -> str:
        if isinstance(sample, str):
            if self.text_template is None:
                return sample
            return self.text_template.format(task_description=self.task_description,
                                             ctx_text=sample).strip()
        messages = list(sample)
        if self.system:
            messages = [{"role": "system", "content": self.system}, *messages]
        if not self.chat_template:
            return "\n\n".join(str(m["content"]) for m in messages)
        return render_chat(self.chat_template, messages, bos_token=self.bos_token,
                           eos_token=self.eos_token, add_generation_prompt=False)

    def joined(self, samples: Sequence[Sample]) -> str:
        return "\n".join(self.render(sample) for sample in samples)


def set_calibration_text(calibration_set: CalibrationSet, formatter: Formatter) -> CalibrationText:
    return CalibrationText(text=formatter.joined(calibration_set.calibration),
                           dataset=f"amicus:{calibration_set.name}", parse_special=True)


def read_input_format(path: Path) -> Mapping[str, str]:
    """A classifier's input format (e.g. modelfiles/intent-safety.json): the two fields the
    calibration needs, `text_template` and `task_description`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the classifier's input format ({exc})") from exc
    fields = {key: data.get(key) for key in ("text_template", "task_description")}
    bad = [key for key, value in fields.items() if not isinstance(value, str)]
    if bad:
        raise InputError(f"{path}: {bad[0]} must be a string")
    if "{ctx_text}" not in fields["text_template"]:
        raise InputError(f"{path}: text_template has no {{ctx_text}}")
    return fields
