"""The message box: multi-line, Enter sends, ctrl+j starts a new line (both remappable), and
Up/Down walk through the prompts sent to this assistant before (remappable too).

The send and new-line keys are handled here, in the order the keys arrive, not by priority
bindings: a priority binding runs before the keys already queued for this widget, so text
typed (or pasted by a terminal without bracketed paste) just before Enter would be sent
without its end, and ctrl+j would land before the text typed ahead of it. The bindings
stay, with their ids, for the footer and for the keymap.

The history keys only recall a prompt from the first row of the box (Up) or its last row
(Down), as shells and chat apps do; anywhere else they move the cursor, so a message of
several lines stays editable. A recalled prompt opens with the cursor on its first row
(going back) or its last (going forward), so the next press goes on through the history;
walking past the newest prompt brings back what was being typed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import TextArea

from app.ui.bindings import bindings
from app.ui.keymap import resolve, split_keys
from app.ui.messages import PromptSubmitted


class PromptInput(TextArea):
    BINDINGS: ClassVar[list[BindingType]] = [
        *bindings("prompt"),
        # Ours replace TextArea's own Up/Down; were the history moved to other keys by the
        # keymap, these keep the arrows moving the cursor.
        Binding("up", "cursor_up", show=False),
        Binding("down", "cursor_down", show=False),
    ]

    def __init__(self, keymap: Mapping[str, str] | None = None, *,
                 id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, compact=True,
                         highlight_cursor_line=False)
        keymap = keymap or resolve({})
        self._submit = set(split_keys(keymap["submit"]))
        self._newline = set(split_keys(keymap["newline"]))
        self.placeholder = (f"Type a message · {keymap['submit']} sends · "
                            f"{keymap['newline']} new line")
        self.history_owner: str | None = None  # the assistant the history is of
        self._history: list[str] = []  # oldest first
        self._place = 0  # the entry shown; len(history): what is being typed
        self._draft = ""  # what was being typed when the walk began

    async def _on_key(self, event: events.Key) -> None:
        keys = {event.key, *event.aliases}
        if keys & self._submit:
            event.stop()
            event.prevent_default()
            self.action_submit()
        elif keys & self._newline:
            event.stop()
            event.prevent_default()
            self.action_newline()
        else:
            await super()._on_key(event)

    def action_submit(self) -> None:
        self._place = len(self._history)
        self.post_message(PromptSubmitted(self.text))

    def action_newline(self) -> None:
        start, end = self.selection
        self.replace("\n", start, end)

    def set_text(self, text: str) -> None:
        """Replace the text, cursor at its end (a restored or a form-built message)."""
        self.load_text(text)
        self.move_cursor(self.document.end)

    # Prompt history

    def set_history(self, owner: str | None, entries: Sequence[str]) -> None:
        """The prompts sent to `owner` before, oldest first; the walk starts over."""
        self.history_owner = owner
        self._history = list(entries)
        self._place = len(self._history)

    @property
    def sent_prompts(self) -> list[str]:
        """The prompt history, oldest first (`history` is TextArea's undo history)."""
        return list(self._history)

    def action_history_previous(self) -> None:
        if self._place == 0 or not self.navigator.is_first_wrapped_line(
                self.cursor_location):
            self.action_cursor_up()
            return
        if self._place == len(self._history):
            self._draft = self.text
        self._place -= 1
        self.load_text(self._history[self._place])
        self.move_cursor((0, len(self.document.get_line(0))))

    def action_history_next(self) -> None:
        if self._place >= len(self._history) or not self.navigator.is_last_wrapped_line(
                self.cursor_location):
            self.action_cursor_down()
            return
        self._place += 1
        recalled = self._history[self._place] if self._place < len(self._history) \
            else self._draft
        self.set_text(recalled)
