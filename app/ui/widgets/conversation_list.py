"""One assistant's conversations, most recent first, with a search box above them."""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, ListItem, ListView

from app.store import Conversation
from app.ui.messages import ConversationChosen
from app.ui.turns import DEFAULT_TITLE, printable


class ConversationItem(ListItem):
    def __init__(self, conversation: Conversation) -> None:
        super().__init__(Label(printable(conversation.title) or DEFAULT_TITLE, markup=False))
        self.conversation_id = conversation.id


class ConversationList(Vertical):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Conversations"
        self._ids: list[int] = []

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search…", id="search", compact=True)
        yield ListView(id="conversations")

    @property
    def search_text(self) -> str:
        return self.query_one("#search", Input).value

    @property
    def ids(self) -> list[int]:
        return list(self._ids)

    async def show(self, conversations: Sequence[Conversation], selected: int | None) -> None:
        """Rebuild the list and highlight `selected` (the screen ignores a choice of the
        conversation it already shows, so highlighting it here announces nothing new)."""
        view = self.query_one("#conversations", ListView)
        await view.clear()
        await view.extend(ConversationItem(c) for c in conversations)
        self._ids = [c.id for c in conversations]
        view.index = self._ids.index(selected) if selected in self._ids else None

    def focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    @on(ListView.Highlighted, "#conversations")
    def _highlighted(self, event: ListView.Highlighted) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(ConversationChosen(event.item.conversation_id))

    @on(ListView.Selected, "#conversations")
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, ConversationItem):
            self.post_message(ConversationChosen(event.item.conversation_id))
