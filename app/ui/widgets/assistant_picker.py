"""The assistants: the four of the design (installed or not) and any other chat model.
Demo models say so on their line: "demo: meaningless text" under the name where the
sidebar is wide enough, else a short "demo" tag (the chat header then spells it out)."""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.content import Content
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from app.ui.messages import AssistantChosen
from app.ui.services import AssistantEntry

DEMO_MARK = "demo: meaningless text"
WIDE = len(DEMO_MARK) + 4  # cells needed to show the mark in full, indented


def entry_label(entry: AssistantEntry, wide: bool) -> Content:
    """The picker's line(s): the name, then what the user must know about its model."""
    if not entry.installed:
        note, style = "not installed", "dim"
    elif entry.demo:
        note, style = (DEMO_MARK if wide else "demo"), "$text-warning"
    else:
        return Content(entry.name)
    if wide or not entry.installed:  # "not installed" is too long to share a narrow line
        return Content.assemble(entry.name, "\n", ("  " + note, style))
    return Content.assemble(entry.name, " ", (note, style))


class AssistantPicker(OptionList):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Assistants"
        self._entries: list[AssistantEntry] = []
        self._wide: bool | None = None

    def show(self, entries: Sequence[AssistantEntry], selected: str | None) -> None:
        self._entries = list(entries)
        self._render_options(selected)

    def _render_options(self, selected: str | None) -> None:
        wide = self._is_wide()
        self._wide = wide
        self.set_options(Option(entry_label(e, wide), id=e.name) for e in self._entries)
        names = [e.name for e in self._entries]
        if selected in names:
            self.highlighted = names.index(selected)

    def _is_wide(self) -> bool:
        return self.size.width == 0 or self.scrollable_content_region.width >= WIDE

    def on_resize(self, event: events.Resize) -> None:
        if self._entries and self._is_wide() != self._wide:
            current = self.highlighted_option.id if self.highlighted_option else None
            self._render_options(current)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option_id is not None:
            self.post_message(AssistantChosen(event.option_id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_id is not None:
            self.post_message(AssistantChosen(event.option_id))
