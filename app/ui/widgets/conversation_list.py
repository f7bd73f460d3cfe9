"""One assistant's conversations, most recent first, with a search box above them; while the
box holds text, the matches in every assistant's conversations instead, each with its
conversation, assistant and a snippet of the text around the match.

Only the most recent conversations are listed (one widget each: a clinic's thousand cases
would take seconds to draw); a "show older…" entry after them asks for more (OlderWanted).
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, ListItem, ListView

from app.store import Conversation, SearchHit
from app.ui.messages import ConversationChosen
from app.ui.turns import DEFAULT_TITLE, printable


class ConversationItem(ListItem):
    def __init__(self, conversation: Conversation) -> None:
        title = printable(conversation.title) or DEFAULT_TITLE
        super().__init__(Label(title, markup=False))
        self.conversation_id = conversation.id
        self.key: tuple[object, ...] = ("conversation", conversation.id, title)


class OlderItem(ListItem):
    """Where the list stops: choosing it lists older conversations."""

    def __init__(self) -> None:
        super().__init__(Label("show older…", markup=False), classes="older")
        self.key: tuple[object, ...] = ("older",)


def hit_snippet(hit: SearchHit) -> Content:
    """The snippet with its match highlighted, after where it was found."""
    text, start, end = hit.snippet.text, hit.snippet.start, hit.snippet.end
    where = {"user": "you", "assistant": "reply", None: "title"}.get(hit.role, hit.role)
    return Content.assemble((f"{where}: ", "dim"), printable(text[:start]),
                            (printable(text[start:end]), "bold reverse"),
                            printable(text[end:]))


class HitItem(ListItem):
    """A search hit: its conversation's title and assistant, then the snippet."""

    def __init__(self, hit: SearchHit) -> None:
        conversation = hit.conversation
        title = Content.assemble(printable(conversation.title) or DEFAULT_TITLE,
                                 (f" · {conversation.assistant}", "dim"))
        super().__init__(Label(title, classes="hit-title"),
                         Label(hit_snippet(hit), classes="snippet"))
        self.conversation_id = conversation.id
        self.message_id = hit.message_id


class ConversationList(Vertical):
    class OlderWanted(Message):
        """The user chose "show older…"."""

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
        """The conversations listed, in order (with hits: one id per hit)."""
        return list(self._ids)

    async def show(self, conversations: Sequence[Conversation], selected: int | None, *,
                   older: bool = False, beyond: Conversation | None = None) -> None:
        """Rebuild the list and highlight `selected` (the screen chose it: highlighting
        it here announces nothing). With `older`, "show older…" follows the conversations,
        then `beyond`: the one shown when it is older than those listed."""
        self.border_title = "Conversations"
        items: list[ListItem] = [ConversationItem(c) for c in conversations]
        if older:
            items.append(OlderItem())
        if beyond is not None:
            items.append(ConversationItem(beyond))
        await self._update(items, selected)

    async def _update(self, items: Sequence[ListItem], selected: int | None) -> None:
        """Show `items`, keeping the listed items they end with: a refresh after a turn
        moves one conversation to the top, and only the items before the unchanged tail
        are made again: with 500 listed, a reply's refresh took 1.12 s made whole, 0.25 s
        so (headless; Textual styles and lays out every new item)."""
        view = self.query_one("#conversations", ListView)
        shown = list(view.children)
        kept = 0
        while kept < min(len(shown), len(items)) and \
                getattr(shown[-1 - kept], "key", None) == getattr(items[-1 - kept], "key", 0):
            kept += 1
        if kept == 0:
            await self._fill(items, selected)
            return
        self.move_cursor(None)  # else removing the item under it would move it, announced
        if len(shown) > kept:
            await view.remove_items(range(len(shown) - kept))
        if len(items) > kept:
            await view.insert(0, items[:len(items) - kept])
        self._listed(selected)

    async def show_older(self, conversations: Sequence[Conversation], *, older: bool) -> None:
        """List `conversations` in place of "show older…" (which stays after them while
        there are `older` ones still), the cursor on the first; the rest is kept, not
        drawn again."""
        view = self.query_one("#conversations", ListView)
        gap = next((i for i, item in enumerate(view.children) if isinstance(item, OlderItem)),
                   None)
        if gap is None:
            return
        listed = {c.id for c in conversations}
        # After the gap sits the conversation shown when it is older than those listed: it
        # goes once this page lists it, or when nothing older is left.
        after = [i for i, item in enumerate(view.children) if i > gap and (
            not older or (isinstance(item, ConversationItem) and item.conversation_id in listed))]
        self.move_cursor(None)  # else removing the item under it would move it, announced
        await view.remove_items([gap, *after])
        items: list[ListItem] = [ConversationItem(c) for c in conversations]
        await view.insert(gap, [*items, OlderItem()] if older else items)
        self._ids = [item.conversation_id for item in view.children
                     if isinstance(item, ConversationItem)]
        self.move_cursor(gap)

    async def show_hits(self, hits: Sequence[SearchHit], selected: int | None) -> None:
        """List search hits, the first of conversation `selected` highlighted."""
        noun = "match" if len(hits) == 1 else "matches"
        self.border_title = f"Search: {len(hits)} {noun}"
        await self._fill([HitItem(hit) for hit in hits], selected)

    async def _fill(self, items: Sequence[ListItem], selected: int | None) -> None:
        view = self.query_one("#conversations", ListView)
        await view.clear()
        await view.extend(items)
        self._listed(selected)

    def _listed(self, selected: int | None) -> None:
        """Note the ids now listed and highlight `selected`'s first item."""
        listed = [item.conversation_id if isinstance(item, ConversationItem | HitItem)
                  else None for item in self.query_one("#conversations", ListView).children]
        self._ids = [cid for cid in listed if cid is not None]
        self.move_cursor(listed.index(selected) if selected in self._ids else None)

    def move_cursor(self, index: int | None) -> None:
        """Highlight the item at `index` without announcing it."""
        view = self.query_one("#conversations", ListView)
        with view.prevent(ListView.Highlighted):
            view.index = index

    def focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    @on(ListView.Highlighted, "#conversations")
    @on(ListView.Selected, "#conversations")
    def _chosen(self, event: ListView.Highlighted | ListView.Selected) -> None:
        event.stop()
        item = event.item
        if isinstance(item, HitItem):
            self.post_message(ConversationChosen(item.conversation_id,
                                                 message_id=item.message_id))
        elif isinstance(item, ConversationItem):
            self.post_message(ConversationChosen(item.conversation_id))
        elif isinstance(item, OlderItem) and isinstance(event, ListView.Selected):
            self.post_message(self.OlderWanted())
