"""Exporting a conversation: a readable Markdown transcript, and a safe file name for it."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable

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


def render_markdown(conversation: Conversation, messages: Iterable[Message]) -> str:
    """A Markdown transcript: a header with the conversation's settings, then one section
    per message; thinking goes in a collapsed <details> block above the answer."""
    parts = [_header(conversation), *(_section(message) for message in messages)]
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


def _header(conversation: Conversation) -> str:
    title = " ".join(conversation.title.split()) or "Untitled conversation"
    lines = [f"# {title}", "", f"- Assistant: {conversation.assistant}"]
    if conversation.model:
        lines.append(f"- Model: {conversation.model}")
    lines.append(f"- Created: {conversation.created_at:%Y-%m-%d %H:%M} UTC")
    if conversation.parameters:
        shown = json.dumps(conversation.parameters, ensure_ascii=False, sort_keys=True)
        lines.append(f"- Parameters: `{shown}`")
    lines.append(f"- Thinking: {'on' if conversation.thinking else 'off'}")
    if conversation.safety_gate:
        lines.append("- Intent-safety gate: on")
    if conversation.system_prompt is not None:
        lines += ["", "**System prompt**", "", _quote(conversation.system_prompt)]
    return "\n".join(lines)


def _section(message: Message) -> str:
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
