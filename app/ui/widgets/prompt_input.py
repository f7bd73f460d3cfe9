"""The message box: multi-line, Enter sends, ctrl+j starts a new line (both remappable).

The two keys are handled here, in the order the keys arrive, not by priority bindings: a
priority binding runs before the keys already queued for this widget, so text typed (or
pasted by a terminal without bracketed paste) just before Enter would be sent without its
end, and ctrl+j would land before the text typed ahead of it. The bindings stay, with their
ids, for the footer and for the keymap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual import events
from textual.binding import BindingType
from textual.widgets import TextArea

from app.ui.bindings import bindings
from app.ui.keymap import resolve, split_keys
from app.ui.messages import PromptSubmitted


class PromptInput(TextArea):
    BINDINGS: ClassVar[list[BindingType]] = bindings("prompt")

    def __init__(self, keymap: Mapping[str, str] | None = None, *,
                 id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, compact=True,
                         highlight_cursor_line=False)
        keymap = keymap or resolve({})
        self._submit = set(split_keys(keymap["submit"]))
        self._newline = set(split_keys(keymap["newline"]))
        self.placeholder = (f"Type a message · {keymap['submit']} sends · "
                            f"{keymap['newline']} new line")

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
        self.post_message(PromptSubmitted(self.text))

    def action_newline(self) -> None:
        start, end = self.selection
        self.replace("\n", start, end)

    def set_text(self, text: str) -> None:
        """Replace the text, cursor at its end (a restored or a form-built message)."""
        self.load_text(text)
        self.move_cursor(self.document.end)
