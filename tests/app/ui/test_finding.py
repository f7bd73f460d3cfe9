"""Finding cases: titles from the content, rename with the old title selected, and search
across every assistant's conversations with a snippet, opening at the matched message."""

from __future__ import annotations

import pytest
from textual.widgets import Input, ListView

from app.assistants.sentencing_case import SentencingCase, render_case
from app.engine.fake import FakeEngine
from app.store import Store
from app.ui.screens.text_dialog import TextDialog
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.conversation_list import ConversationList, HitItem

from .conftest import settle, wait_until
from .test_chat import choose, type_and_send

pytestmark = pytest.mark.anyio


async def test_a_sentencing_case_is_titled_by_charge_and_defendant(rig_factory):
    case = render_case(SentencingCase(charges="盗窃罪", facts="被告人张某于2023年3月窃取商品。"))
    rig = rig_factory(FakeEngine("判处有期徒刑一年。"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "sentencing")
        await type_and_send(pilot, case)
        await settle(pilot, rig.app)
        [conversation] = rig.store.list_conversations("sentencing")
        assert conversation.title == "盗窃罪 · 张某"
        assert str(rig.app.screen.query_one("#chat").border_title) == "盗窃罪 · 张某"


async def test_rename_starts_with_the_old_title_selected(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "Overtime pay")
        await settle(pilot, rig.app)
        await pilot.press("f2")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, TextDialog))
        await pilot.pause()
        field = rig.app.screen.query_one(Input)
        assert field.value == "Overtime pay" and field.selected_text == "Overtime pay"
        await pilot.press(*"加班費", "enter")  # typing replaces the old title
        await wait_until(pilot, lambda: rig.store.get_conversation(1).title == "加班費")


def seeded_store() -> Store:
    store = Store.open(incognito=True)
    rent = store.create_conversation("moral-audit", title="Rent")
    store.add_message(rent.id, "user", "Is it fair to keep the whole deposit?")
    for i in range(10):  # the match ends up before the last messages drawn
        store.add_message(rent.id, "assistant", f"answer {i}")
        store.add_message(rent.id, "user", f"question {i}")
    store.create_conversation("moral-audit", title="Unrelated")
    civic = store.create_conversation("civic-qa", title="租屋押金")
    store.add_message(civic.id, "user", "房東可以不退押金嗎？租約已經結束了。")
    store.set_setting("ui.assistant", "moral-audit")
    return store


async def test_search_covers_every_assistant_and_opens_at_the_match(rig_factory):
    rig = rig_factory(store=seeded_store())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        listing = rig.app.screen.query_one(ConversationList)
        await pilot.press("ctrl+f")
        await pilot.press(*"押金")
        await wait_until(pilot, lambda: listing.ids == [3, 3])  # civic-qa's title, message
        items = list(listing.query(HitItem))
        texts = [str(label.render()) for item in items for label in item.query("Label")]
        assert texts[0] == "租屋押金 · civic-qa" and texts[1] == "title: 租屋押金"
        assert texts[3] == "you: 房東可以不退押金嗎？租約已經結束了。"
        rig.app.screen.query_one(Input).value = "DEPOSIT"  # letters in any case
        await wait_until(pilot, lambda: listing.ids == [1])
        [hit] = listing.query(HitItem)
        snippet = hit.query("Label").last().render()
        assert "deposit" in str(snippet)
        assert any("reverse" in str(span.style) for span in snippet.spans)  # highlighted
        assert str(listing.border_title) == "Search: 1 match"
        # Choosing the hit opens the conversation at the message, drawn although early.
        rig.app.screen.query_one(ListView).focus()  # nothing highlighted yet: Down
        await pilot.press("down", "enter")
        chat = rig.app.screen.query_one(ChatView)
        first = rig.store.messages(1)[0]
        await wait_until(pilot, lambda: chat.message(first.id) is not None)
        assert "found" in chat.message(first.id).classes
        await wait_until(pilot, lambda: chat.scroll_y < chat.max_scroll_y)  # not at the end
        # A hit in another assistant's conversation switches to that assistant.
        rig.app.screen.query_one(Input).value = "押金"
        await wait_until(pilot, lambda: listing.ids == [3, 3])
        rig.app.screen.query_one(ListView).index = 1
        await wait_until(pilot, lambda: rig.app.screen.entry.name == "civic-qa")
        assert rig.app.screen.conversation.id == 3
        picker = rig.app.screen.query_one(AssistantPicker)
        await wait_until(pilot, lambda: picker.highlighted_option.id == "civic-qa")
        await pilot.pause(0.2)
        assert rig.app.screen.conversation.id == 3  # the picker's echo changed nothing
        # Emptying the box lists this assistant's conversations again.
        rig.app.screen.query_one(Input).value = ""
        await wait_until(pilot, lambda: listing.ids == [3])
        assert str(listing.border_title) == "Conversations"
