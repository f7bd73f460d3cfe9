"""The main screen's left column: the assistant picker above the chosen assistant's
conversations (with their search box).

It reads the store for its list and says what the user did with messages
(AssistantChosen, ConversationChosen, SearchChanged); which conversation is shown is the
screen's to decide, so the screen also says which one the list keeps highlighted.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from app.store import Conversation
from app.ui.failures import store_call_or
from app.ui.messages import SearchChanged
from app.ui.services import AssistantEntry, Services
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.conversation_list import ConversationList


class Sidebar(Vertical):
    def __init__(self, services: Services, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.services = services

    def compose(self) -> ComposeResult:
        yield AssistantPicker(id="assistants")
        yield ConversationList(id="conversation-list")

    def show_assistants(self, entries: Sequence[AssistantEntry], selected: str | None) -> None:
        self.query_one(AssistantPicker).show(entries, selected)

    async def show_conversations(self, assistant: str,
                                 selected: int | None) -> list[Conversation]:
        """List `assistant`'s conversations that match the search box, `selected`
        highlighted; a store failure shows its dialog and an empty list."""
        listing = self.query_one(ConversationList)
        found: list[Conversation] = store_call_or(
            self, [], self.services.store.list_conversations, assistant,
            listing.search_text or None)
        await listing.show(found, selected)
        return found

    def focus_search(self) -> None:
        self.query_one(ConversationList).focus_search()

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(SearchChanged(event.value))
