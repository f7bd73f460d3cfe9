"""A data folder that can be read but not written: past conversations are shown read-only
under a banner saying why, new ones are kept in memory, and export still works."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from app.store import Store
from app.ui.screens.text_dialog import TextDialog
from app.ui.widgets.prompt_input import PromptInput
from tests.app.store.conftest import read_only

from .conftest import settle, wait_until
from .test_chat import type_and_send

pytestmark = pytest.mark.anyio


def read_only_store(folder: Path) -> Store:
    """A store whose file holds one conversation, opened while the folder is read-only."""
    path = folder / "amicus.sqlite3"
    with Store.open(path) as store:
        chat = store.create_conversation("moral-audit", title="Old case")
        store.add_message(chat.id, "user", "Is it fair?")
        store.add_message(chat.id, "assistant", "It depends.")
    with read_only(folder):
        opened = Store.open(path)
    assert opened.read_only is not None
    return opened


async def test_past_conversations_show_read_only_with_a_banner(rig_factory, folder,
                                                               _isolated_home):
    store = read_only_store(folder)
    before = (folder / "amicus.sqlite3").read_bytes()
    rig = rig_factory(store=store)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        screen = rig.app.screen
        banner = screen.query_one("#banner", Static)
        assert banner.display and "Read-only" in str(banner.render())
        assert store.read_only in str(banner.render())  # why
        assert [v.answer_text for v in screen.pane.chat.messages()] == ["Is it fair?",
                                                                        "It depends."]
        await type_and_send(pilot, "one more question")
        await pilot.pause()
        assert rig.engine.calls == [] and len(store.messages(1)) == 2  # refused
        assert screen.query_one(PromptInput).text == "one more question"
        for key in ("alt+r", "alt+e", "f2", "f8"):  # nothing can change it
            await pilot.press(key)
            await pilot.pause()
            assert rig.app.screen is screen
        assert store.get_conversation(1).title == "Old case"
        assert len(store.messages(1)) == 2
        # Export still works, to a folder that can be written.
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, TextDialog))
        await pilot.pause()
        path = rig.app.screen.query_one(Input).value
        assert path.startswith(str(_isolated_home / "exports"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: os.path.exists(path))
        assert "It depends." in Path(path).read_text("utf-8")
        # A new conversation works, kept in memory.
        await pilot.press("ctrl+n")
        assert "kept in memory" in str(banner.render())
        await type_and_send(pilot, "a new question")
        await settle(pilot, rig.app)
        assert [m.status for m in store.messages(2)] == ["complete", "complete"]
    assert (folder / "amicus.sqlite3").read_bytes() == before  # nothing written
