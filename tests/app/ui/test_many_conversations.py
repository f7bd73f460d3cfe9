"""An assistant with many conversations: the newest are listed, "show older…" lists more,
and a search reaches the rest (an old conversation it opens is listed and highlighted)."""

from __future__ import annotations

import pytest
from textual.widgets import Input, ListView

from app.store import NotFoundError, Store
from app.ui.screens.text_dialog import TextDialog
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.conversation_list import ConversationList, HitItem, OlderItem
from app.ui.widgets.sidebar import PAGE

from .conftest import wait_until

pytestmark = pytest.mark.anyio
MANY = 150


def crowded_store() -> Store:
    """MANY moral-audit conversations (ids 1..MANY, the last the most recent), one
    civic-qa conversation; the third moral-audit one mentions a rare word."""
    store = Store.open(incognito=True)
    for i in range(1, MANY + 1):
        case = store.create_conversation("moral-audit", title=f"Case {i}")
        store.add_message(case.id, "user", "the zebra clause" if i == 3 else f"question {i}")
    store.create_conversation("civic-qa", title="租屋押金")
    store.set_setting("ui.assistant", "moral-audit")
    return store


def newest(count: int) -> list[int]:
    return list(range(MANY, MANY - count, -1))


async def choose_older(pilot, listing: ConversationList) -> None:
    """Move the cursor to "show older…" and press Enter."""
    view = listing.query_one(ListView)
    view.focus()
    view.index = len(view.children) - 1
    assert isinstance(view.highlighted_child, OlderItem)
    await pilot.press("enter")


async def test_the_newest_are_listed_and_show_older_lists_more(rig_factory):
    rig = rig_factory(store=crowded_store())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        screen = rig.app.screen
        listing = screen.query_one(ConversationList)
        await wait_until(pilot, lambda: listing.ids == newest(PAGE))
        assert listing.has_older and screen.conversation.id == MANY
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == newest(2 * PAGE))
        view = listing.query_one(ListView)
        assert view.index == PAGE  # the cursor on the first older one, not opened
        assert screen.conversation.id == MANY
        await pilot.press("down")  # moving the cursor opens, as before
        await wait_until(pilot, lambda: screen.conversation.id == MANY - PAGE - 1)
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == newest(MANY))
        assert not listing.has_older  # all listed
        # Another assistant, then back: the newest page again.
        screen.query_one(AssistantPicker).focus()
        await screen.choose_assistant("civic-qa")
        await wait_until(pilot, lambda: listing.ids == [MANY + 1] and not listing.has_older)
        await screen.choose_assistant("moral-audit")
        await wait_until(pilot, lambda: listing.ids == newest(PAGE) and listing.has_older)


async def test_a_search_opens_an_old_conversation_and_lists_it(rig_factory):
    rig = rig_factory(store=crowded_store())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        screen = rig.app.screen
        listing = screen.query_one(ConversationList)
        await wait_until(pilot, lambda: listing.ids == newest(PAGE))
        assert 3 not in listing.ids
        await pilot.press("ctrl+f")
        await pilot.press(*"zebra")
        await wait_until(pilot, lambda: listing.ids == [3])
        assert isinstance(listing.query_one(ListView).children[0], HitItem)
        listing.query_one(ListView).focus()
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: screen.conversation is not None
                         and screen.conversation.id == 3)
        # Emptying the box: the newest, "show older…", then the one shown, highlighted.
        screen.query_one("#search", Input).value = ""
        await wait_until(pilot, lambda: listing.ids == [*newest(PAGE), 3])
        view = listing.query_one(ListView)
        assert isinstance(view.children[PAGE], OlderItem)
        assert view.index == PAGE + 1 and screen.conversation.id == 3
        # Renamed, it is the most recently changed: first, and still highlighted.
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, TextDialog))
        rig.app.screen.query_one(Input).value = "Zebra crossing"
        await pilot.press("enter")
        await wait_until(pilot, lambda: listing.ids == [3, *newest(PAGE - 1)])
        assert view.index == 0 and listing.has_older
        # Deleted, the newest is shown and the list holds no gap.
        await pilot.press("f8")
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.conversation.id == MANY)
        await wait_until(pilot, lambda: listing.ids == newest(PAGE))
        with pytest.raises(NotFoundError):
            rig.store.get_conversation(3)
