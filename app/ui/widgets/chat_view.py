"""The messages of the conversation shown, kept scrolled to the bottom while a reply
streams in (until the user scrolls up; scrolling back down re-anchors it). Whether the
thinking blocks are expanded, and whether the replies' details show, is decided here for
every message, those to come included (a click on one reply's "details" shows its own)."""

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
        self.details_shown = False  # the replies' provenance is shown

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

    async def show_details(self, show: bool) -> None:
        """Show (or hide) what produced every reply, and every reply to come."""
        self.details_shown = show
        for view in self.messages():
            await view.set_details(show)

    async def replace_from(self, message_id: int, widgets: Sequence[Widget]) -> bool:
        """Put `widgets` where the message's view is, instead of it and every view after
        it (a new version of a message changes what follows it); False if not shown."""
        children = list(self.children)
        old = self.message(message_id)
        if old is None:
            return False
        await self.remove_children(children[children.index(old):])
        await self.mount_all(widgets)
        return True

    def reveal(self, message_id: int) -> None:
        """Scroll so that the message is at the top, and mark it (a search found it)."""
        view = self.message(message_id)
        if view is not None:
            view.add_class("found")
            self.call_after_refresh(self.scroll_to_widget, view, animate=False, top=True)

    def messages(self) -> list[MessageView]:
        return list(self.query(MessageView))

    def message(self, message_id: int) -> MessageView | None:
        return next((m for m in self.messages() if m.message_id == message_id), None)
