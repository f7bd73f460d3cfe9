"""The messages of the conversation shown, kept scrolled to the bottom while a reply
streams in (until the user scrolls up; scrolling back down re-anchors it). Whether the
thinking blocks are expanded is decided here, for every message, those to come included."""

from __future__ import annotations

from collections.abc import Sequence

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Markdown, Static

from app.ui.widgets.message_view import MessageView


class ChatView(VerticalScroll):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.can_focus = True  # so the keyboard can scroll a long conversation
        self.thoughts_shown = False  # the thinking blocks are expanded

    def on_mount(self) -> None:
        self.anchor()

    async def show(self, widgets: Sequence[Widget], *, earlier: int = 0) -> None:
        """Replace what is shown; `earlier` messages before these are offered on request."""
        await self.remove_children()
        if earlier:
            noun = "message" if earlier == 1 else "messages"
            link = Static(Content.from_markup(
                f"[@click=screen.show_earlier]↑ {earlier} earlier {noun}: show them[/]"),
                classes="earlier")
            widgets = [link, *widgets]
        await self.mount_all(widgets)
        self.anchor()

    async def show_hint(self, markdown: str) -> None:
        """No conversation (yet): a short guide instead of messages."""
        await self.show([Markdown(markdown, classes="hint", open_links=False)])

    async def add(self, widget: Widget) -> None:
        await self.remove_children(".hint")
        await self.mount(widget)

    def show_thoughts(self, show: bool) -> None:
        """Expand (or collapse) the thinking of every message, and of those added later."""
        self.thoughts_shown = show
        for view in self.messages():
            view.show_thoughts(show)

    def messages(self) -> list[MessageView]:
        return list(self.query(MessageView))

    def message(self, message_id: int) -> MessageView | None:
        return next((m for m in self.messages() if m.message_id == message_id), None)
