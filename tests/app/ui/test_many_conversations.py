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
from tests.app.store.conftest import read_only

from .conftest import settle, wait_until
from .test_chat import type_and_send

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


def has_older(listing: ConversationList) -> bool:
    return bool(listing.query(OlderItem))


async def choose_older(pilot, listing: ConversationList) -> None:
    """Move the cursor to "show older…" and press Enter."""
    view = listing.query_one(ListView)
    view.focus()
    view.index = view.children.index(listing.query_one(OlderItem))
    await pilot.press("enter")


async def test_the_newest_are_listed_and_show_older_lists_more(rig_factory):
    rig = rig_factory(store=crowded_store())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        screen = rig.app.screen
        listing = screen.query_one(ConversationList)
        await wait_until(pilot, lambda: listing.ids == newest(PAGE))
        assert has_older(listing) and screen.conversation.id == MANY
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == newest(2 * PAGE))
        view = listing.query_one(ListView)
        assert view.index == PAGE  # the cursor on the first older one, not opened
        assert screen.conversation.id == MANY
        await pilot.press("down")  # moving the cursor opens, as before
        await wait_until(pilot, lambda: screen.conversation.id == MANY - PAGE - 1)
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == newest(MANY))
        assert not has_older(listing)  # all listed
        # Another assistant, then back: the newest page again.
        screen.query_one(AssistantPicker).focus()
        await screen.choose_assistant("civic-qa")
        await wait_until(pilot, lambda: listing.ids == [MANY + 1] and not has_older(listing))
        await screen.choose_assistant("moral-audit")
        await wait_until(pilot, lambda: listing.ids == newest(PAGE) and has_older(listing))


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
        # "Show older…" keeps it after them until it is reached, then lists it in place.
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == [*newest(2 * PAGE), 3])
        assert screen.conversation.id == 3
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == newest(MANY))
        assert not has_older(listing) and view.index == 2 * PAGE
        # Renamed, it is the most recently changed: first, and highlighted.
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, TextDialog))
        rig.app.screen.query_one(Input).value = "Zebra crossing"
        await pilot.press("enter")
        others = [i for i in newest(MANY) if i != 3]
        await wait_until(pilot, lambda: listing.ids == [3, *others])
        assert view.index == 0
        # Deleted, the newest is shown.
        await pilot.press("f8")
        await pilot.press("y")
        await wait_until(pilot, lambda: screen.conversation.id == MANY)
        await wait_until(pilot, lambda: listing.ids == others)
        with pytest.raises(NotFoundError):
            rig.store.get_conversation(3)


async def test_a_read_only_data_folder_lists_the_same_way(rig_factory, folder, _isolated_home):
    path = folder / "amicus.sqlite3"
    with Store.open(path) as store:
        for i in range(1, PAGE + 11):
            store.create_conversation("moral-audit", title=f"Case {i}")
    with read_only(folder):
        store = Store.open(path)
    assert store.read_only is not None
    rig = rig_factory(store=store)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        listing = rig.app.screen.query_one(ConversationList)
        await wait_until(pilot, lambda: len(listing.ids) == PAGE and has_older(listing))
        await choose_older(pilot, listing)
        await wait_until(pilot, lambda: listing.ids == list(range(PAGE + 10, 0, -1)))
        assert not has_older(listing)
        # A new conversation, kept in memory, is listed first.
        await pilot.press("ctrl+n")
        await type_and_send(pilot, "kept in memory")
        await settle(pilot, rig.app)
        await wait_until(pilot, lambda: listing.ids[:2] == [PAGE + 11, PAGE + 10])


async def test_a_refresh_makes_again_only_the_items_that_changed(rig_factory):
    """After a reply in an older conversation it moves to the top: the items below where it
    was are the same widgets (not made again); a rename (which moves it up too) remakes
    the items down to where it was only; the order and titles are the store's."""
    rig = rig_factory(store=crowded_store())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        screen = rig.app.screen
        listing = screen.query_one(ConversationList)
        await wait_until(pilot, lambda: listing.ids == newest(PAGE))
        before = list(listing.query_one(ListView).children)
        await screen.open_conversation(MANY - 3)
        await type_and_send(pilot, "one more question")
        await settle(pilot, rig.app)
        order = [MANY - 3, *[i for i in newest(PAGE) if i != MANY - 3]]
        await wait_until(pilot, lambda: listing.ids == order)
        after = list(listing.query_one(ListView).children)
        assert after[5:] == before[5:]  # below the old place: untouched
        assert after[0] is not before[3] and after[0].conversation_id == MANY - 3
        assert isinstance(after[-1], OlderItem) and after[-1] is before[-1]
        assert after[10].conversation_id == MANY - 10
        rig.store.rename_conversation(MANY - 10, "Renamed")
        await screen.refresh_conversations(MANY - 3)
        assert listing.ids == [c.id for c in rig.store.list_conversations(
            "moral-audit", limit=PAGE)]
        renamed = list(listing.query_one(ListView).children)
        assert renamed[11:] == after[11:]
        item = next(i for i in renamed if getattr(i, "conversation_id", None) == MANY - 10)
        assert item is not after[10] and str(item.query_one("Label").render()) == "Renamed"
        view = listing.query_one(ListView)
        assert view.children[view.index].conversation_id == MANY - 3  # still highlighted
