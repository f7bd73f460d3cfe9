"""The intent-safety gate, and every failure the app must survive with a dialog: a model
that is missing, corrupt or fails to load, an engine error, a full disk, a damaged store."""

from __future__ import annotations

import shutil

import pytest

from app.engine.errors import EngineError, ModelLoadError
from app.engine.fake import FakeEngine
from app.store import DiskFullError, Store
from app.ui.app import AmicusApp, open_store
from app.ui.config import UIConfig
from app.ui.screens.error_dialog import ErrorDialog
from app.ui.services import Services, real_assistant_opener
from app.ui.widgets.chat_header import ChatHeader
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.prompt_input import PromptInput
from converters.errors import InputError

from .conftest import settle, wait_until
from .test_chat import choose, type_and_send

pytestmark = pytest.mark.anyio


async def dialog(pilot) -> ErrorDialog:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ErrorDialog),
                     what="an error dialog")
    return pilot.app.screen


async def close_dialog(pilot) -> None:
    await pilot.press("enter")
    await wait_until(pilot, lambda: pilot.app.screen.id == "main")


async def test_gate_blocks_an_unsafe_turn_and_keeps_the_text(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+g")
        assert rig.store.get_conversation(1).safety_gate is True
        assert "gate: on" in str(rig.app.screen.query_one(ChatHeader).render())
        await type_and_send(pilot, "a forbidden plan")
        await settle(pilot, rig.app)
        assert rig.engine.calls == [] and rig.opened == []  # never reached the model
        [blocked] = rig.store.messages(1)
        assert (blocked.status, blocked.blocked_probability) == ("blocked", 0.93)
        view = rig.app.screen.query_one(ChatView).messages()[-1]
        assert "Blocked by the intent-safety gate" in view.note and "0.93" in view.note
        assert rig.app.screen.query_one(PromptInput).text == "a forbidden plan"
        # The next, safe turn goes through; the blocked one is not part of the history.
        await type_and_send(pilot, "a fair question")
        await settle(pilot, rig.app)
        assert rig.gate.calls[-1] == ([], "a fair question")
        sent = [m for m in rig.engine.calls[-1]["messages"] if m["role"] != "system"]
        assert sent == [{"role": "user", "content": "a fair question"}]


async def test_gate_off_sends_without_classifying(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "a forbidden plan")
        await settle(pilot, rig.app)
        assert rig.gate.calls == [] and len(rig.engine.calls) == 1


async def test_gate_that_cannot_load_stops_the_turn(rig_factory):
    rig = rig_factory(gate_error=InputError("no installed model named 'intent-safety'"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+g")
        await type_and_send(pilot, "hello")
        shown = await dialog(pilot)
        assert shown.title_text == "The intent-safety gate could not be loaded"
        assert "intent-safety" in shown.message
        await close_dialog(pilot)
        assert rig.engine.calls == [] and rig.store.messages(1) == []
        assert rig.app.screen.query_one(PromptInput).text == "hello"


async def test_model_that_fails_to_load_shows_a_dialog(rig_factory):
    rig = rig_factory(open_error=ModelLoadError("moral-audit.Q4_K_M.gguf: not a GGUF file"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        shown = await dialog(pilot)
        assert shown.title_text == "The model could not be loaded"
        assert "not a GGUF" in shown.message
        await close_dialog(pilot)
        assert rig.app.screen.query_one(PromptInput).text == "hello"
        assert not rig.app.busy
        rig.app.screen.query_one(PromptInput).focus()
        await pilot.press("x")  # still running, still typing
        assert rig.app.screen.query_one(PromptInput).text == "hellox"


async def test_corrupt_and_missing_model_files_with_the_real_loader(demo_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(demo_models, models)
    gguf = next((models / "moral-audit").glob("*.gguf"))
    gguf.write_bytes(b"GGUF" + b"\0" * 64)  # truncated: llama.cpp refuses it
    shutil.rmtree(models / "general")
    (models / "general").mkdir()  # a folder with no manifest: not installed
    services = Services(Store.open(incognito=True),
                        open_assistant=real_assistant_opener(root=models),
                        models_root=models)
    app = AmicusApp(UIConfig(), services)
    async with app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        shown = await dialog(pilot)
        assert shown.title_text == "The model could not be loaded"
        await close_dialog(pilot)
        await choose(pilot, "general")
        assert "not installed" in str(app.screen.query_one(ChatHeader).render())
        await type_and_send(pilot, "hello")
        shown = await dialog(pilot)
        assert "amicus demo" in shown.message


async def test_engine_error_marks_the_reply_failed(rig_factory):
    rig = rig_factory(FakeEngine(error=EngineError("llama_decode returned -1")))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        shown = await dialog(pilot)
        assert (shown.title_text, shown.message) == ("The engine failed",
                                                     "llama_decode returned -1")
        await close_dialog(pilot)
        _user, reply = rig.store.messages(1)
        assert reply.status == "error"
        view = rig.app.screen.query_one(ChatView).messages()[-1]
        assert "the reply failed" in view.note
        assert rig.app.screen.query_one(PromptInput).text == "hello"  # to try again
        rig.engine.error = None
        await type_and_send(pilot, "hello")
        await settle(pilot, rig.app)
        sent = [m for m in rig.engine.calls[-1]["messages"] if m["role"] != "system"]
        assert sent == [{"role": "user", "content": "hello"}]  # the failed turn is left out


async def test_full_disk_shows_a_dialog_and_the_app_carries_on(rig_factory, monkeypatch):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        def full(*args, **kwargs):
            raise DiskFullError("The disk is full: could not save to amicus.sqlite3. "
                                "Free some space and try again.")

        monkeypatch.setattr(rig.store, "create_conversation", full)
        await type_and_send(pilot, "hello")
        shown = await dialog(pilot)
        assert shown.title_text == "The disk is full"
        await close_dialog(pilot)
        assert rig.app.screen.query_one(PromptInput).text == "hello"
        monkeypatch.undo()
        await type_and_send(pilot, "hello")
        await settle(pilot, rig.app)
        assert rig.store.messages(1)[-1].status == "complete"


async def test_full_disk_while_storing_the_turn(rig_factory, monkeypatch):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+g", "ctrl+g")  # creates the conversation
        real = rig.store.add_message

        def full(*args, **kwargs):
            raise DiskFullError("The disk is full.")

        monkeypatch.setattr(rig.store, "add_message", full)
        await type_and_send(pilot, "hello")
        await dialog(pilot)
        await close_dialog(pilot)
        await settle(pilot, rig.app)
        monkeypatch.setattr(rig.store, "add_message", real)
        assert rig.store.messages(1) == []
        assert rig.app.screen.query_one(ChatView).messages() == []


async def test_damaged_database_opens_incognito_with_a_dialog(demo_models, _isolated_home):
    (_isolated_home / "amicus.sqlite3").write_bytes(b"this is not a database" * 100)
    store, problem = open_store(UIConfig())
    assert store.incognito and problem is not None
    app = AmicusApp(UIConfig(), Services(store, models_root=demo_models),
                    startup_problem=problem)
    async with app.run_test(size=(120, 40)) as pilot:
        shown = await dialog(pilot)
        assert shown.title_text == "Conversations unavailable" and "incognito" in shown.message
        await close_dialog(pilot)
