"""Exporting a conversation: a readable Markdown transcript, and a safe file name for it."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence

from .provenance import Provenance
from .records import Conversation, Message

# eCryptfs (encrypted home folders) allows 143 bytes per name, most file systems 255:
# 120 bytes of stem (40 CJK characters) plus ".md" fits everywhere.
MAX_STEM_BYTES = 120
# Unsafe on Windows or POSIX (a USB stick moves exports to other laptops).
_PATH_UNSAFE = frozenset('\\/:*?"<>|')
# Invisible format characters (a bidi override could disguise the extension) and lone
# surrogates (not encodable) are dropped; control characters (tabs, newlines) are blanks.
_DROPPED_CATEGORIES = frozenset({"Cf", "Cs"})
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{port}{n}" for port in ("COM", "LPT") for n in range(10)})
_ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant"}
_STATUS_NOTES = {
    "streaming": "_(interrupted before the reply was finished)_",
    "cancelled": "_(cancelled: a partial reply)_",
    "error": "_(the reply failed)_",
}


DEMO_NOTICE = ("> **Demo model**: replies marked DEMO below come from a random-weight "
               "stand-in; their text is meaningless.")
UNVERIFIED_NOTICE = ("> **Unverified model**: replies marked \"used anyway\" below come from "
                     "a model file whose checksums did not match its manifest.")


def render_markdown(conversation: Conversation, messages: Sequence[Message],
                    alternatives: Mapping[int, tuple[int, int]] | None = None) -> str:
    """A Markdown transcript: a header with the conversation's settings and the model and
    settings of its first reply (their provenance), then one section per message, each
    reply whose model or settings differ from the previous one's preceded by a note of
    what changed; thinking goes in a collapsed <details> block above the answer.
    `alternatives` (message id -> (place, count)) notes replies that have other versions."""
    records = [m.provenance for m in messages if m.provenance is not None]
    parts = [_header(conversation, records[0] if records else None)]
    notices = [DEMO_NOTICE if any(r.model.demo for r in records) else "",
               UNVERIFIED_NOTICE if any(r.model.used_anyway for r in records) else ""]
    parts += [notice for notice in notices if notice]
    previous = records[0] if records else None
    for message in messages:
        record = message.provenance
        if record is not None and previous is not None and \
                record.describe() != previous.describe():
            parts.append(_change_note(previous, record))
        previous = record or previous
        parts.append(_section(message, (alternatives or {}).get(message.id)))
    return "\n\n".join(parts) + "\n"


def export_filename(conversation: Conversation) -> str:
    """A file name for the conversation's export: its title with CJK and other letters
    kept, only path-unsafe characters replaced, at most MAX_STEM_BYTES + ".md", never
    empty."""
    stem = (safe_stem(conversation.title)
            or safe_stem(f"{conversation.assistant} {conversation.id}")
            or f"conversation {conversation.id}")
    return f"{stem}.md"


def safe_stem(text: str, max_bytes: int = MAX_STEM_BYTES) -> str:
    """`text` as a file name stem that is safe on Windows, macOS and Linux ("" if nothing
    is left): unsafe characters become spaces, runs of blanks one space."""
    text = unicodedata.normalize("NFC", text)  # macOS would store NFD: count bytes on NFC
    kept = "".join(_replacement(char) for char in text)
    stem = " ".join(kept.split()).strip(" .")  # a leading dot hides; Windows drops trailing
    # Cut at a byte boundary; "ignore" drops a character the cut split in two.
    stem = stem.encode()[:max_bytes].decode(errors="ignore").rstrip(" .")
    if stem.split(".")[0].rstrip().upper() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return stem


def _replacement(char: str) -> str:
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES:
        return ""
    return " " if char in _PATH_UNSAFE or category == "Cc" else char


def _header(conversation: Conversation, record: Provenance | None) -> str:
    title = " ".join(conversation.title.split()) or "Untitled conversation"
    lines = [f"# {title}", "", f"- Assistant: {conversation.assistant}"]
    if conversation.model and record is None:  # else the provenance below names it
        lines.append(f"- Model: {conversation.model}")
    lines.append(f"- Created: {conversation.created_at:%Y-%m-%d %H:%M} UTC")
    if conversation.parameters:
        shown = json.dumps(conversation.parameters, ensure_ascii=False, sort_keys=True)
        lines.append(f"- Parameters: `{shown}`")
    lines.append(f"- Thinking: {'on' if conversation.thinking else 'off'}")
    if conversation.safety_gate:
        lines.append("- Intent-safety gate: on")
    if record is not None:
        lines += ["", "**Model and settings** (of every reply, unless a note says otherwise)",
                  "", *(f"- {label}: {value}" for label, value in _settings(record))]
    system_prompt = conversation.system_prompt if record is None else record.system_prompt
    if system_prompt is not None:
        lines += ["", "**System prompt**", "", _quote(system_prompt)]
    return "\n".join(lines)


def _settings(record: Provenance) -> list[tuple[str, str]]:
    """The provenance lines the header lists (the system prompt is quoted whole apart)."""
    return [(label, value) for label, value in record.describe() if label != "System prompt"]


def _change_note(before: Provenance, after: Provenance) -> str:
    """What differs for the reply that follows: the lines of `after` that changed."""
    old = dict(before.describe())
    lines = ["> **Model or settings changed from this reply on:**"]
    lines += [f"> - {label}: {value}" for label, value in after.describe()
              if old.get(label) != value]
    return "\n".join(lines)


def _section(message: Message, version: tuple[int, int] | None = None) -> str:
    parts = [f"## {_ROLE_HEADINGS.get(message.role, message.role.title())}"]
    if message.thinking:
        # Blank lines around the body let Markdown render inside the HTML block; a stray
        # closing tag in the thinking would end the block early, so it is escaped.
        body = message.thinking.strip().replace("</details", "&lt;/details")
        parts.append(f"<details>\n<summary>Thinking</summary>\n\n{body}\n\n</details>")
    parts.append(message.content.strip() or "_(empty)_")
    note = _note(message)
    if note:
        parts.append(note)
    if version is not None:
        parts.append(f"_(version {version[0]} of {version[1]}: the one picked; the others "
                     "are kept in Amicus)_")
    return "\n\n".join(parts)


def _note(message: Message) -> str:
    if message.status == "blocked":
        shown = ("" if message.blocked_probability is None
                 else f" (probability unsafe: {message.blocked_probability:.2f})")
        return f"> **Blocked by the intent-safety gate**{shown}: not sent to the assistant."
    figures = message.figures()
    notes = [_STATUS_NOTES.get(message.status, ""), f"_{' · '.join(figures)}_" if figures else ""]
    return " ".join(note for note in notes if note)


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())
