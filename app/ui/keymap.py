"""Every user action of the app: its binding id (the name the config's [keymap] uses), its
default keys, where it applies, and how the footer and the command palette name it.

One table feeds the key bindings, the footer, the palette and the config validation, so an
action cannot exist in one place and be missing from another.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from converters.errors import InputError

Scope = Literal["app", "main", "prompt"]
MODIFIERS = frozenset({"ctrl", "shift", "alt", "super", "meta", "hyper"})
_NAMED_KEYS = frozenset({
    "escape", "enter", "tab", "space", "backspace", "delete", "insert", "home", "end",
    "pageup", "pagedown", "up", "down", "left", "right", *(f"f{n}" for n in range(1, 25)),
})
# Textual's names for some punctuation (see textual.keys.KEY_NAME_REPLACEMENTS).
_TEXTUAL_NAMES = {"slash": "solidus", "backslash": "reverse solidus", "at": "commercial at",
                  "minus": "hyphen-minus", "plus": "plus sign", "underscore": "low line"}


@dataclass(frozen=True)
class ActionSpec:
    id: str  # binding id: the key of the config file's [keymap] table
    keys: str  # default keys, comma-separated, in Textual's syntax ("ctrl+n", "f2")
    action: str  # the action method (on the main screen, the prompt input or the app)
    title: str  # short name: footer and palette
    help: str  # one line for the palette
    scope: Scope
    footer: bool = False  # shown in the footer (kept few: the footer is one line at 80 cells)
    # Checked before the focused widget's own keys, so the app's keys work wherever the
    # focus is. Main-screen keys avoid the keys text boxes use (TextArea: f6, f7, ctrl+a...).
    priority: bool = True


ACTIONS: tuple[ActionSpec, ...] = (
    # Enter sends; ctrl+j inserts a newline because it works in every terminal, whereas
    # shift+enter reaches the app as a plain enter in many of them.
    ActionSpec("submit", "enter", "submit", "Send", "Send the message", "prompt",
               footer=True, priority=False),  # the prompt input handles these two in order
    ActionSpec("newline", "ctrl+j", "newline", "Newline", "Insert a line break in the message",
               "prompt", footer=True, priority=False),
    # Up/Down recall earlier prompts only from the box's first/last row (see PromptInput).
    ActionSpec("history_previous", "up", "history_previous", "Earlier prompt",
               "Recall the previous prompt sent to this assistant (from the first line)",
               "prompt", priority=False),
    ActionSpec("history_next", "down", "history_next", "Later prompt",
               "Recall the next prompt sent to this assistant (from the last line)", "prompt",
               priority=False),
    ActionSpec("cancel", "escape", "cancel", "Stop", "Stop the reply being generated (or "
               "leave editing)", "main", footer=True),
    ActionSpec("new_conversation", "ctrl+n", "new_conversation", "New",
               "Start a new conversation with this assistant", "main", footer=True),
    ActionSpec("rename_conversation", "f2", "rename_conversation", "Rename",
               "Rename the current conversation", "main"),
    ActionSpec("delete_conversation", "f8", "delete_conversation", "Delete",
               "Delete the current conversation", "main"),
    ActionSpec("search", "ctrl+f", "search", "Search",
               "Search every assistant's conversations (a snippet of each match)", "main"),
    ActionSpec("focus_prompt", "ctrl+l", "focus_prompt", "Prompt", "Move to the message box",
               "main"),
    ActionSpec("toggle_thinking", "ctrl+t", "toggle_thinking", "Thinking on/off",
               "Let the model think before answering, or not (Qwen3 models; this conversation)",
               "main"),
    ActionSpec("toggle_thoughts", "ctrl+o", "toggle_thoughts", "Show thinking",
               "Expand or collapse the thinking blocks", "main"),
    ActionSpec("toggle_gate", "ctrl+g", "toggle_gate", "Safety gate",
               "Check each message with the intent-safety classifier first (this conversation)",
               "main"),
    ActionSpec("edit_options", "f4", "edit_options", "Prompt, parameters & context",
               "Edit this conversation's system prompt, sampling parameters and context size "
               "(num_ctx, with the memory it takes)", "main"),
    ActionSpec("attach", "f10", "attach", "Attach",
               "Attach a document (.txt, .md, .docx, .pdf) to the message", "main"),
    ActionSpec("open_form", "f5", "open_form", "Form",
               "Fill a structured form: moral-audit frames or the sentencing case", "main"),
    # The editing loop. Alt keys: every ctrl+letter is taken by the app or by the text
    # boxes (TextArea: ctrl+a/e/d/k/u/w/x/c/v/z/y, f6, f7).
    ActionSpec("edit_last", "alt+e", "edit_last", "Edit last",
               "Edit your last message and send it again (the earlier version is kept)",
               "main"),
    ActionSpec("regenerate", "alt+r", "regenerate", "Regenerate",
               "Write the last reply again (the earlier versions are kept)", "main"),
    ActionSpec("previous_version", "alt+left", "previous_version", "Previous version",
               "Show the previous version of the last message that has several", "main"),
    ActionSpec("next_version", "alt+right", "next_version", "Next version",
               "Show the next version of the last message that has several", "main"),
    ActionSpec("toggle_details", "alt+d", "toggle_details", "Details",
               "Show or hide what produced each reply: model, file, checksum, settings",
               "main"),
    ActionSpec("export", "ctrl+s", "export", "Export",
               "Export this conversation to a Markdown file", "main"),
    ActionSpec("copy_reply", "ctrl+r", "copy_reply", "Copy reply",
               "Copy the last reply to the clipboard", "main"),
    ActionSpec("copy_code", "f9", "copy_code", "Copy code",
               "Copy the last code block of the last reply to the clipboard", "main"),
    ActionSpec("models", "f3", "models", "Models",
               "Installed models, checksums and the backend in use", "main"),
    ActionSpec("show_earlier", "ctrl+up", "show_earlier", "Earlier messages",
               "Show the conversation's earlier messages (long ones open at the end)", "main"),
    ActionSpec("toggle_sidebar", "ctrl+b", "toggle_sidebar", "Sidebar",
               "Show or hide the assistants and conversations", "main"),
    ActionSpec("toggle_dark", "f12", "toggle_dark", "Light/dark",
               "Switch between the light and the dark theme", "app"),
    ActionSpec("help", "f1", "toggle_help", "Keys", "Show or hide the keys of the screen",
               "app"),
    ActionSpec("palette", "ctrl+p", "command_palette", "Commands",
               "Every action, searchable", "app"),
    ActionSpec("quit", "ctrl+q", "quit", "Quit", "Quit Amicus", "app"),
)
ACTION_IDS: frozenset[str] = frozenset(spec.id for spec in ACTIONS)


class KeymapError(InputError):
    """A keymap entry names no action, or gives keys Textual cannot bind."""


def actions(scope: Scope) -> list[ActionSpec]:
    return [spec for spec in ACTIONS if spec.scope == scope]


def spec(action_id: str) -> ActionSpec:
    return next(s for s in ACTIONS if s.id == action_id)


def split_keys(keys: str) -> list[str]:
    return [key.strip() for key in keys.split(",") if key.strip()]


def check_key(key: str) -> None:
    """Raise KeymapError unless `key` is one key Textual can bind ("ctrl+shift+f5", "x")."""
    *mods, base = key.split("+") if key != "+" else ["+"]
    unknown = [m for m in mods if m not in MODIFIERS]
    if unknown or len(set(mods)) != len(mods):
        raise KeymapError(f"{key!r}: modifiers must be among {', '.join(sorted(MODIFIERS))}")
    if not base or not _known_base(base):
        raise KeymapError(f"{key!r}: {base!r} is not a key name (examples: ctrl+s, f5, enter, "
                          "escape, pageup, x)")


def _known_base(base: str) -> bool:
    if len(base) == 1:
        return base.isprintable() and not base.isspace()
    if base in _NAMED_KEYS:
        return True
    name = _TEXTUAL_NAMES.get(base, base.replace("_", " "))
    try:  # Textual names punctuation by its Unicode name: question_mark, full_stop...
        char = unicodedata.lookup(name.upper())
    except KeyError:
        return False
    # Keyboard punctuation and symbols only ("banana" is a Unicode name too: U+1F34C).
    return unicodedata.category(char)[0] in "PS" and ord(char) < 0x2000


def resolve(overrides: Mapping[str, str]) -> dict[str, str]:
    """The full keymap (id -> keys): defaults with `overrides` applied, checked for unknown
    ids and bad key names. A key the config gives to a main-screen action wins over
    another main-screen action's default: that default is the other action's no longer (an
    action left with none is unbound; the command palette lists every main-screen action,
    see `unbound`), so that a new default key never stops a config written before it from
    loading. A key the config gives twice, or takes from the message box's or the app's
    own actions (Textual would let such a default win, and the palette does not list them
    all: Newline, the prompt history, the palette itself), is refused."""
    for action_id in overrides:
        if action_id not in ACTION_IDS:
            raise KeymapError(f"unknown action id {action_id!r}; known: "
                              f"{', '.join(s.id for s in ACTIONS)}")
    given: dict[str, str] = {}
    for action_id, keys in overrides.items():
        parts = split_keys(keys)
        if not parts:
            raise KeymapError(f"{action_id}: no key given")
        for key in parts:
            check_key(key)
            if key in given:
                raise KeymapError(f"{key!r} is bound to both {given[key]} and {action_id}; "
                                  "give one of them another key")
            given[key] = action_id
    keymap = {}
    for action in ACTIONS:
        if action.id in overrides:
            keymap[action.id] = overrides[action.id]
            continue
        for key in split_keys(action.keys):
            taker = given.get(key)
            if taker is not None and (action.scope != "main" or spec(taker).scope != "main"):
                raise KeymapError(f"{key!r} is bound to both {action.id} and {taker}; give "
                                  f"{taker} another key")
        keymap[action.id] = ", ".join(k for k in split_keys(action.keys) if k not in given)
    return keymap


def unbound(keymap: Mapping[str, str]) -> list[tuple[ActionSpec, str]]:
    """The actions whose default keys the config gave to others, each with who took the
    first of them (for the notice at start)."""
    takers = {key: action_id for action_id, keys in keymap.items()
              for key in split_keys(keys)}
    return [(s, takers.get(split_keys(s.keys)[0], "?")) for s in ACTIONS
            if not split_keys(keymap.get(s.id, s.keys))]


def first_key(keymap: Mapping[str, str], action_id: str) -> str:
    """The key to name in help text; for an unbound action, where to find it instead."""
    keys = split_keys(keymap.get(action_id, spec(action_id).keys))
    if keys:
        return keys[0]
    return f"“{spec(action_id).title}” in {first_key(keymap, 'palette')}"


def with_keys(title: str, keys: str) -> str:
    """A title with its keys in brackets ("Export (ctrl+s)"), or alone when unbound."""
    return f"{title} ({keys})" if keys else title


def describe(specs: Iterable[ActionSpec], keymap: Mapping[str, str]) -> list[tuple[str, str]]:
    """(keys, title) pairs, for help text."""
    return [(keymap.get(s.id, s.keys), s.title) for s in specs]
