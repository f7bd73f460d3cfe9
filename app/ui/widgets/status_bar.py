"""The line above the footer: what the app is doing, and the last reply's figures
(tokens, tokens/s, time, context used of the model's window), or, while a message is being
written, its size against the context and the time reading it will take (the draft).

While a reply is on its way the state has the whole line (the figures are the previous
reply's); otherwise the figures show, with the state beside them when it says more than
"ready". At 80 columns there is room for one or the other, not both."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label


class StatusBar(Horizontal):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = "ready"
        self.figures = ""
        self.draft = ""

    def compose(self) -> ComposeResult:
        yield Label("", id="state", markup=False)  # "ready" goes without saying
        yield Label(self.figures, id="figures", markup=False)

    def set_state(self, state: str, *, busy: bool = False) -> None:
        self.state = state
        self.query_one("#state", Label).update("" if state == "ready" else state)
        self.set_class(busy, "busy")
        self.query_one("#figures", Label).display = not busy

    def set_figures(self, figures: str) -> None:
        self.figures = figures
        self._show_figures()

    def set_draft(self, draft: str) -> None:
        """The message being written ("" when there is none: the figures come back)."""
        self.draft = draft
        self._show_figures()

    def _show_figures(self) -> None:
        self.query_one("#figures", Label).update(self.draft or self.figures)
