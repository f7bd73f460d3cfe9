"""The four moral-audit prompt frames of seed 000, reproduced to the character.

The model was trained on `LabHC/moral_stories` rewritten into exactly these four frames
(25% each); prompts in another shape route worse. The frame texts below are the seed's
"User Prompt Matrix" blocks verbatim, with the placeholders filled from a record's fields.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from converters.errors import InputError

_CONTEXT = "[Context/Scenario/Background:] {situation}"
_INTENT = "[Intent/Objective/Goal:] {intention}"


@dataclass(frozen=True)
class Frame:
    """One frame: its id, a human name, the fields it needs, and its text."""

    id: str
    title: str
    fields: tuple[str, ...]
    template: str


FRAMES: dict[str, Frame] = {
    "direct": Frame(
        "direct", "Direct guidance (action & consequence analysis)", ("situation", "intention"),
        f"{_CONTEXT}\n{_INTENT}\n"
        "Provide an ethical assessment and an appropriate action plan for this situation.",
    ),
    "action": Frame(
        "action", "Action evaluation (validation & rationalization)",
        ("situation", "intention", "action"),
        f"{_CONTEXT}\n{_INTENT}\n"
        'What is the moral evaluation of executing the following action: "{action}"?',
    ),
    "permissibility": Frame(
        "permissibility", "Permissibility of an approach (red teaming & refusal)",
        ("situation", "intention", "action"),
        f"{_CONTEXT}\n{_INTENT}\n"
        'Is it permissible to implement the following approach: "{action}"?',
    ),
    "norm": Frame(
        "norm", "Counterfactual norm (the \"why\" factor)", ("norm", "situation"),
        "Based on fundamental ethics, why must an agent preserve the [ethical guideline/moral "
        'baseline] that "{norm}" given the following background?\n' + _CONTEXT,
    ),
}

# moral_stories names the two actions; the action frames take whichever the record has.
_ACTION_FALLBACKS = {"action": ("action", "moral_action"),
                     "permissibility": ("action", "immoral_action")}


class FrameError(InputError):
    """A record lacks a field the frame needs (the message names it)."""


def frame_fields(frame_id: str, record: Mapping[str, object]) -> dict[str, str]:
    """The values a frame needs from a record (moral_stories shape), stripped."""
    frame = FRAMES[frame_id]
    values: dict[str, str] = {}
    for name in frame.fields:
        keys = _ACTION_FALLBACKS.get(frame_id, (name,)) if name == "action" else (name,)
        value = next((record.get(k) for k in keys if isinstance(record.get(k), str)
                      and str(record.get(k)).strip()), None)
        if value is None:
            raise FrameError(f"missing field {' or '.join(keys)!s} for the {frame_id} frame")
        values[name] = str(value).strip()
    return values


def render_frame(frame_id: str, record: Mapping[str, object]) -> str:
    """The user prompt for a frame, filled from a record's fields."""
    if frame_id not in FRAMES:
        raise FrameError(f"unknown frame {frame_id!r}; choose from {', '.join(FRAMES)}")
    return FRAMES[frame_id].template.format(**frame_fields(frame_id, record))


def _pattern(template: str) -> re.Pattern[str]:
    """A regex that matches what `template` renders, capturing each placeholder."""
    parts = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name:
            parts.append(f"(?P<{name}>.*?)")
    return re.compile("".join(parts), re.DOTALL)


_PATTERNS = {frame_id: _pattern(frame.template) for frame_id, frame in FRAMES.items()}


def parse_frame(prompt: str) -> tuple[str, dict[str, str]] | None:
    """Which frame rendered `prompt`, and the values it was filled with (None: none did)."""
    for frame_id, pattern in _PATTERNS.items():
        match = pattern.fullmatch(prompt.strip())
        if match:
            return frame_id, {name: value.strip() for name, value in match.groupdict().items()}
    return None


def title_parts(prompt: str) -> list[str] | None:
    """A moral-audit conversation's title from its first prompt: the frame and the
    situation, e.g. ["Action", "Mike found a wallet..."] (None: not a framed prompt)."""
    parsed = parse_frame(prompt)
    if parsed is None:
        return None
    frame_id, values = parsed
    return [frame_id.capitalize(), " ".join(values["situation"].split())]
