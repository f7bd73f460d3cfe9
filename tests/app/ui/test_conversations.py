"""Conversations: new, rename, delete, search; export to Markdown; copy; the model manager;
themes and the command palette."""

from __future__ import annotations

import os
import shutil

import pytest
from textual.widgets import DataTable, Input

from app.engine.fake import FakeEngine
from app.store import NotFoundError
from app.ui.app import AmicusApp
from app.ui.config import UIConfig
from app.ui.keymap import actions
from app.ui.screens.choice_dialog import ChoiceDialog
from app.ui.screens.model_manager import ModelManager
from app.ui.screens.text_dialog import TextDialog
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.conversation_list import ConversationList
from tests.app.engine.conftest import state_writer

from .conftest import settle, wait_until
from .test_chat import type_and_send

pytestmark = pytest.mark.anyio
CODE_REPLY = "Run this:\n\n```python\nprint('押金')\n```\n\nThen this:\n\n```sh\nls -l\n```\n"


async def text_dialog(pilot) -> TextDialog:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, TextDialog))
    await pilot.pause()
    return pilot.app.screen


async def test_new_rename_delete_and_search(rig_factory):
    rig = rig_factory(FakeEngine(replies=["one", "two"]))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        listing = rig.app.screen.query_one(ConversationList)
        await type_and_send(pilot, "租屋押金")
        await settle(pilot, rig.app)
        await pilot.press("ctrl+n")
        assert rig.app.screen.conversation is None
        await type_and_send(pilot, "Overtime pay")
        await settle(pilot, rig.app)
        assert listing.ids == [2, 1]  # most recent first
        await pilot.press("f2")
        dialog = await text_dialog(pilot)
        dialog.query_one(Input).value = "加班費 overtime"
        await pilot.press("enter")
        await wait_until(pilot, lambda: rig.store.get_conversation(2).title == "加班費 overtime")
        assert rig.app.screen.query_one("#chat").border_title == "加班費 overtime"
        await pilot.press("ctrl+f")
        await pilot.press(*"押金")
        await wait_until(pilot, lambda: listing.ids == [1, 1])  # its title, its message
        rig.app.screen.query_one("#search", Input).value = ""
        await wait_until(pilot, lambda: listing.ids == [2, 1])
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: listing.ids == [1])
        with pytest.raises(NotFoundError):
            rig.store.get_conversation(2)
        assert rig.app.screen.conversation.id == 1  # the next one is shown


async def test_delete_can_be_declined(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "keep me")
        await settle(pilot, rig.app)
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        await pilot.press("escape")
        await pilot.pause()
        assert rig.store.get_conversation(1).title == "keep me"


async def test_export_writes_markdown_under_a_cjk_name(rig_factory, _isolated_home):
    rig = rig_factory(FakeEngine("押金應於租約終止時返還。"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "租屋押金：可以不退嗎?")
        await settle(pilot, rig.app)
        for expected in ("租屋押金：可以不退嗎.md", "租屋押金：可以不退嗎 (2).md"):
            await pilot.press("ctrl+s")
            dialog = await text_dialog(pilot)
            path = dialog.query_one(Input).value
            assert path == str(_isolated_home / "exports" / expected)
            await pilot.press("enter")
            await wait_until(pilot, lambda p=path: os.path.exists(p))
        text = (_isolated_home / "exports" / "租屋押金：可以不退嗎.md").read_text("utf-8")
        assert text.startswith("# 租屋押金：可以不退嗎?")
        assert "## User\n\n租屋押金：可以不退嗎?" in text
        assert "押金應於租約終止時返還。" in text


async def test_export_to_an_unwritable_place_shows_a_dialog(rig_factory, tmp_path):
    rig = rig_factory()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        await settle(pilot, rig.app)
        await pilot.press("ctrl+s")
        dialog = await text_dialog(pilot)
        dialog.query_one(Input).value = str(blocker / "out.md")
        await pilot.press("enter")
        from app.ui.screens.error_dialog import ErrorDialog

        await wait_until(pilot, lambda: isinstance(rig.app.screen, ErrorDialog))
        assert rig.app.screen.title_text == "The conversation could not be exported"


async def test_copy_reply_message_and_code_block(rig_factory):
    rig = rig_factory(FakeEngine(CODE_REPLY))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "code please")
        await settle(pilot, rig.app)
        await pilot.press("ctrl+r")
        assert rig.app.clipboard == CODE_REPLY.strip()
        await pilot.press("f9")
        assert rig.app.clipboard == "ls -l"
        rig.app.copy_to_clipboard("")
        header = rig.app.screen.query_one(ChatView).messages()[-1].query_one(".header")
        await pilot.click(header, offset=(len("moral-audit  ") + 1, 0))  # its "copy" link
        assert rig.app.clipboard == CODE_REPLY.strip()
        from textual.widgets._markdown import MarkdownFence

        fence = rig.app.screen.query_one(ChatView).messages()[-1].query(MarkdownFence).first()
        await pilot.click(fence)  # a click on a code block copies it
        assert rig.app.clipboard == "print('押金')"


async def test_model_manager_lists_models_and_verifies(rig_factory, demo_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(demo_models, models)
    rig = rig_factory(models=models)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
        table = rig.app.screen.query_one(DataTable)
        rows = {str(table.get_row_at(i)[0]).splitlines()[0]: table.get_row_at(i)
                for i in range(table.row_count)}
        assert set(rows) == {"civic-qa", "general", "intent-safety", "moral-audit",
                             "sentencing"}
        name, kind, quant, size, checksum = rows["intent-safety"]
        assert (kind, quant, checksum) == ("classifier", "Q4_K_M", "not verified")
        assert size.endswith("KB") or size.endswith("MB")
        assert str(name) == "intent-safety\ndemo: meaningless text"
        backend = rig.app.screen.query_one("#backend")
        await wait_until(pilot, lambda: "backend" in str(backend.render()))
        assert "No model loaded yet" in str(backend.render())
        assert not rig.app.screen.query_one("#guidance").display
        quality = rig.app.screen.query_one("#quality")
        await wait_until(pilot, lambda: "civic-qa · importance matrix" in str(quality.render()))
        assert "KL vs F16, mean / p99" in str(quality.render())
        await pilot.press("down")
        await wait_until(pilot, lambda: str(quality.render()).startswith("general ·"))
        await pilot.press("up")
        await pilot.press("v")  # the highlighted row: civic-qa
        await wait_until(pilot, lambda: table.get_row_at(0)[4] == "verified")
        await pilot.press("escape")
        await wait_until(pilot, lambda: rig.app.screen.id == "main")


async def test_model_manager_shows_the_backend_in_use(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "load it")
        await settle(pilot, rig.app)
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
        backend = rig.app.screen.query_one("#backend")
        await wait_until(pilot, lambda: "In use" in str(backend.render()))
        assert "moral-audit" in str(backend.render()) and "CPU" in str(backend.render())
        table = rig.app.screen.query_one(DataTable)
        names = [str(table.get_row_at(i)[0]).splitlines()[0] for i in range(table.row_count)]
        assert "moral-audit (loaded)" in names


async def test_no_models_installed_shows_guidance(rig_factory, tmp_path):
    rig = rig_factory(models=tmp_path / "empty")
    async with rig.app.run_test(size=(120, 40)) as pilot:
        hint = rig.app.screen.query_one(ChatView).query_one(".hint")
        assert "not installed" in hint.source and "amicus demo" in hint.source
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
        assert rig.app.screen.query_one("#guidance").display
        assert not rig.app.screen.query_one(DataTable).display
        source = rig.app.screen.query_one("#guidance").source
        for command in ("amicus demo", "amicus convert", "amicus models import-ollama"):
            assert command in source


async def test_light_and_dark_themes(rig_factory):
    rig = rig_factory(config=UIConfig(theme="nord"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        assert rig.app.theme == "nord"
        await pilot.press("f12")
        assert rig.app.theme == "textual-light"
        await pilot.press("f12")
        assert rig.app.theme == "nord"


async def test_palette_offers_every_action(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        titles = [c.title for c in rig.app.get_system_commands(rig.app.screen)]
        for spec in actions("main"):
            assert any(t.startswith(spec.title + " (") for t in titles), spec.id
        assert any(t.startswith("Send (") for t in titles)
        assert any(t.startswith("Light/dark theme") for t in titles)
        await pilot.press("f1")  # the keys of the screen
        await wait_until(pilot, lambda: rig.app.screen.query("HelpPanel"))
        await pilot.press("f1")
        await wait_until(pilot, lambda: not rig.app.screen.query("HelpPanel"))
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Models")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))


async def test_sidebar_hides_for_narrow_terminals(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(80, 24)) as pilot:
        sidebar = rig.app.screen.query_one("#sidebar")
        await pilot.press("ctrl+b")
        assert not sidebar.display
        await pilot.press("ctrl+b")
        assert sidebar.display


def test_app_class_needs_no_engine_to_build(demo_models):
    from app.store import Store
    from app.ui.services import Services

    app = AmicusApp(UIConfig(), Services(Store.open(incognito=True), models_root=demo_models))
    assert app.services.loaded is None


async def test_long_conversations_open_at_the_end(rig_factory):
    from app.store import Store

    store = Store.open()
    chat = store.create_conversation("moral-audit", title="long")
    for i in range(10):
        store.add_message(chat.id, "user", f"question {i}")
        store.add_message(chat.id, "assistant", f"answer {i}")
    rig = rig_factory(store=store)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        view = rig.app.screen.query_one(ChatView)
        assert [m.answer_text for m in view.messages()][-1] == "answer 9"
        assert len(view.messages()) == 8
        assert "12 earlier messages" in str(view.query_one(".earlier").render())
        await pilot.press("ctrl+up")
        await wait_until(pilot, lambda: len(view.messages()) == 20)
        assert not view.query(".earlier")


async def test_titles_with_markup_characters_are_shown_as_typed(rig_factory):
    from app.store import Store

    store = Store.open()
    store.create_conversation("moral-audit", title="[bold]rent[/oops \x1b[2J")
    rig = rig_factory(store=store)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        title = rig.app.screen.query_one("#chat").border_title
        assert "[bold]rent[/oops" in title.replace("\\[", "[") and "\x1b" not in title


async def test_deleting_a_conversation_forgets_its_saved_reading(rig_factory):
    """Its KV cache, which holds its text, goes with it: from the loaded model and from
    the states saved on disk; another conversation's state stays."""
    from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore

    store = KVStateStore.default()

    def state(owner: str, first: int):
        return store.save("m", list(range(first, first + MIN_SAVED_TOKENS)), state_writer(10),
                          10, supersede=False, owner=owner)

    engine = FakeEngine(replies=["one", "two"])
    rig = rig_factory(engine)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "first case")
        await settle(pilot, rig.app)
        await pilot.press("ctrl+n")
        await type_and_send(pilot, "second case")
        await settle(pilot, rig.app)
        assert engine.owners == ["conversation-1", "conversation-2"]
        kept, gone = state("conversation-1", 0), state("conversation-2", 1000)
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: rig.app.screen.conversation is not None
                         and rig.app.screen.conversation.id == 1)
        assert engine.forgotten == ["conversation-2"]
        assert [e.name for e in store.entries()] == [kept.name]
        assert not gone.path.exists()
