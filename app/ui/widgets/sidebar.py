"""The main screen's left column: the assistant picker above the chosen assistant's
conversations, with their search box (which searches every assistant's conversations).

It reads the store for its list and says what the user did with messages
(AssistantChosen, ConversationChosen, SearchChanged); which conversation is shown is the
screen's to decide, so the screen also says which one the list keeps highlighted.

Startup must not depend on how many conversations an assistant has: the list holds the
most recent PAGE (or a screenful, if more), each "show older…" another PAGE; the search
finds the rest. An older conversation shown (a search opened it) is listed after them.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from app.store import Conversation, SearchHit
from app.ui.failures import store_call_or
from app.ui.messages import SearchChanged
from app.ui.services import AssistantEntry, Services
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.conversation_list import ConversationList

PAGE = 50  # conversations listed at first, and added by each "show older…"


class Sidebar(Vertical):
    def __init__(self, services: Services, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.services = services
        self._assistant: str | None = None  # whose conversations are listed
        self._limit = PAGE  # how many of them

    def compose(self) -> ComposeResult:
        yield AssistantPicker(id="assistants")
        yield ConversationList(id="conversation-list")

    def show_assistants(self, entries: Sequence[AssistantEntry], selected: str | None) -> None:
        self.query_one(AssistantPicker).show(entries, selected)

    async def show_conversations(self, assistant: str,
                                 selected: int | None) -> list[Conversation]:
        """List `assistant`'s conversations, `selected` highlighted; while the search box
        holds text, the matches in every assistant's conversations instead. Returns
        `assistant`'s conversations listed (a store failure shows its dialog and lists
        none)."""
        listing = self.query_one(ConversationList)
        store = self.services.store
        if listing.search_text.strip():
            hits: list[SearchHit] = store_call_or(self, [], store.search, listing.search_text)
            await listing.show_hits(hits, selected)
            return list({hit.conversation.id: hit.conversation for hit in hits
                         if hit.conversation.assistant == assistant}.values())
        if assistant != self._assistant:
            self._assistant, self._limit = assistant, max(PAGE, self.app.size.height)
        # One more than listed: whether there are older ones.
        found: list[Conversation] = store_call_or(self, [], store.list_conversations,
                                                  assistant, limit=self._limit + 1)
        found, older = found[:self._limit], len(found) > self._limit
        beyond = None
        if older and selected is not None and selected not in {c.id for c in found}:
            beyond = store_call_or(self, None, store.get_conversation, selected)
            if beyond is not None and beyond.assistant != assistant:
                beyond = None
        await listing.show(found, selected, older=older, beyond=beyond)
        return found if beyond is None else [*found, beyond]

    def focus_search(self) -> None:
        self.query_one(ConversationList).focus_search()

    @on(ConversationList.OlderWanted)
    async def _older_wanted(self, event: ConversationList.OlderWanted) -> None:
        """List PAGE more after those listed, the cursor on the first of them (the one
        shown stays shown)."""
        event.stop()
        if self._assistant is None:
            return
        found: list[Conversation] = store_call_or(
            self, [], self.services.store.list_conversations, self._assistant,
            limit=PAGE + 1, offset=self._limit)
        if found:
            self._limit += PAGE
            await self.query_one(ConversationList).show_older(found[:PAGE],
                                                              older=len(found) > PAGE)

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(SearchChanged(event.value))
