"""Traceable answers in the app: every reply is stored with its provenance and shows it on
demand (a details toggle per reply, by key and by click); a model whose verification FAILED
is not loaded without asking (verify again / remove / use anyway, for an assistant and for
the gate), and "use anyway" is recorded; the export names the model and its settings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input

from app.assistants.registry import find_model, verify_model
from app.engine.fake import FakeEngine
from app.ui.screens.choice_dialog import ChoiceDialog
from app.ui.screens.text_dialog import TextDialog
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.prompt_input import PromptInput

from .conftest import settle, wait_until
from .test_chat import type_and_send

pytestmark = pytest.mark.anyio


def views(app):
    return app.screen.query_one(ChatView).messages()


async def test_replies_are_stored_with_their_provenance_and_show_it_on_demand(rig_factory):
    rig = rig_factory(FakeEngine("A reply."))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "Is it fair?")
        await settle(pilot, rig.app)
        _user, reply = rig.store.messages(1)
        record = reply.provenance
        assert record is not None and record.assistant == "moral-audit"
        assert record.model.file.endswith(".gguf") and record.model.demo
        assert record.model.sha256 and record.model.verification == "not verified"
        assert record.backend.kind == "embedded" and record.num_ctx == 4096
        assert record.sampling["temperature"] == 0.2 and record.think is True
        assert rig.store.get_conversation(1).model == record.label  # the conversation too
        view = views(rig.app)[-1]
        assert view.provenance == record and not view.query(".details")
        assert "details" in str(view.query_one(".header").render())
        await pilot.press("alt+d")  # every reply's details
        await wait_until(pilot, lambda: view.query(".details"))
        shown = str(view.query_one(".details").render())
        assert [line.split(":")[0] for line in shown.splitlines()] == [
            label for label, _value in record.describe()]
        assert "DEMO (random weights: meaningless text)" in shown
        assert "not verified" in shown and record.model.sha256 in shown
        await pilot.press("alt+d")
        await wait_until(pilot, lambda: not view.query(".details"))
        # A click on one reply's "details" link shows its own.
        header = view.query_one(".header")
        await pilot.click(header, offset=(len("moral-audit  copy  ") + 1, 0))
        await wait_until(pilot, lambda: view.query(".details"))
        assert "hide details" in str(header.render())
        await pilot.pause()  # the click scrolls its reply into view: let it settle
        await pilot.click(header, offset=(len("moral-audit  copy  ") + 1, 0))
        await wait_until(pilot, lambda: not view.query(".details"))


async def test_details_follow_the_conversation_settings(rig_factory):
    rig = rig_factory(FakeEngine("A reply."))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "first")
        await settle(pilot, rig.app)
        rig.app.screen.set_options(system_prompt="Answer briefly.",
                                   parameters={"temperature": 0.7})
        await type_and_send(pilot, "second")
        await settle(pilot, rig.app)
        first, second = [m.provenance for m in rig.store.messages(1)
                         if m.role == "assistant"]
        assert first.sampling["temperature"] == 0.2 and second.sampling["temperature"] == 0.7
        assert second.system_prompt == "Answer briefly." != first.system_prompt


def failed_copy(demo_models: Path, tmp_path: Path, name: str) -> Path:
    """The demo models with `name`'s GGUF altered by one byte and verified: FAILED."""
    models = tmp_path / "models"
    shutil.copytree(demo_models, models)
    model = find_model(name, models)
    data = bytearray(model.gguf.read_bytes())
    data[-1] ^= 0xFF
    model.gguf.write_bytes(bytes(data))
    assert verify_model(model)  # the problems found
    assert find_model(name, models).checksum_status() == "FAILED"
    return models


async def unverified_dialog(pilot) -> ChoiceDialog:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog),
                     timeout=20, what="the unverified-model dialog")
    await pilot.pause()
    return pilot.app.screen


async def test_a_failed_model_asks_first_and_use_anyway_is_recorded(rig_factory, demo_models,
                                                                   tmp_path):
    models = failed_copy(demo_models, tmp_path, "moral-audit")
    rig = rig_factory(FakeEngine("Written anyway."), models=models)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        dialog = await unverified_dialog(pilot)
        assert dialog.title_text == "The model failed verification"
        assert "sha256 differs" in dialog.message and "use it anyway" in dialog.message
        assert rig.opened == [] and rig.store.messages(1) == []  # nothing loaded or sent
        assert rig.app.screen_stack[0].query_one(PromptInput).text == "hello"
        await pilot.press("c")  # cancel: nothing happens
        await wait_until(pilot, lambda: rig.app.screen.id == "main")
        assert rig.engine.calls == []
        await type_and_send(pilot, "hello")
        await unverified_dialog(pilot)
        await pilot.press("u")
        await settle(pilot, rig.app)
        _user, reply = rig.store.messages(1)
        assert reply.content == "Written anyway."
        assert reply.provenance.model.verification == "FAILED"
        assert reply.provenance.model.used_anyway
        # For the rest of the session it is not asked again.
        await type_and_send(pilot, "again")
        await settle(pilot, rig.app)
        assert rig.store.messages(1)[-1].provenance.model.used_anyway
        await pilot.press("alt+d")
        view = views(rig.app)[-1]
        await wait_until(pilot, lambda: view.query(".details"))
        assert "FAILED: used anyway" in str(view.query_one(".details").render())
        text = rig.store.export_markdown(1)
        assert "Unverified model" in text and "FAILED: used anyway" in text


async def test_verify_again_retries_and_loads_a_repaired_model(rig_factory, demo_models,
                                                              tmp_path):
    models = failed_copy(demo_models, tmp_path, "moral-audit")
    rig = rig_factory(models=models)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        await unverified_dialog(pilot)
        await pilot.press("v")  # still altered: verified again, FAILED again, asked again
        dialog = await unverified_dialog(pilot)
        assert "sha256 differs" in dialog.message
        await pilot.press("c")
        await wait_until(pilot, lambda: rig.app.screen.id == "main")
        gguf = find_model("moral-audit", models).gguf
        data = bytearray(gguf.read_bytes())
        data[-1] ^= 0xFF  # repaired in place, its size and time kept (as `cp -p` would):
        stat = gguf.stat()  # still FAILED until verified again
        gguf.write_bytes(bytes(data))
        os.utime(gguf, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        await type_and_send(pilot, "hello")
        await unverified_dialog(pilot)
        await pilot.press("v")
        await wait_until(pilot, lambda: len(rig.store.messages(1)) == 2, timeout=20)
        await settle(pilot, rig.app)
        reply = rig.store.messages(1)[-1]
        assert reply.provenance.model.verification == "verified"
        assert not reply.provenance.model.used_anyway


async def test_remove_deletes_the_model_and_the_picker_says_so(rig_factory, demo_models,
                                                              tmp_path):
    models = failed_copy(demo_models, tmp_path, "moral-audit")
    rig = rig_factory(models=models)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hello")
        await unverified_dialog(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: not (models / "moral-audit").exists())
        picker = rig.app.screen.query_one(AssistantPicker)
        await wait_until(pilot, lambda: "not installed" in str(
            picker.get_option_at_index(0).prompt))
        assert rig.app.screen.query_one(PromptInput).text == "hello"
        assert rig.engine.calls == []


async def test_the_gate_asks_too_and_use_anyway_loads_it(rig_factory, demo_models, tmp_path):
    models = failed_copy(demo_models, tmp_path, "intent-safety")
    rig = rig_factory(models=models)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+g")
        await type_and_send(pilot, "hello")
        dialog = await unverified_dialog(pilot)
        assert "intent-safety" in dialog.message
        assert rig.gate.calls == []
        await pilot.press("u")
        await settle(pilot, rig.app)
        assert rig.gate.calls == [([], "hello")]
        assert [m.status for m in rig.store.messages(1)] == ["complete", "complete"]


async def test_export_through_the_app_names_model_settings_and_versions(rig_factory,
                                                                       _isolated_home):
    rig = rig_factory(FakeEngine(replies=["First try.", "Second try."]))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "Is it fair to keep a wallet?")
        await settle(pilot, rig.app)
        await pilot.press("alt+r")
        await settle(pilot, rig.app)
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, TextDialog))
        await pilot.pause()
        path = rig.app.screen.query_one(Input).value
        await pilot.press("enter")
        await wait_until(pilot, lambda: os.path.exists(path))
    text = Path(path).read_text("utf-8")
    record = rig.store.messages(1)[-1].provenance
    assert "**Model and settings**" in text and f"- SHA-256: {record.model.sha256}" in text
    assert "- Backend: embedded llama.cpp" in text and "- Context: 4096 tokens" in text
    assert "temperature 0.2" in text and "DEMO (random weights" in text
    assert "**Demo model**" in text  # the notice that the text is meaningless
    assert "Second try." in text and "First try." not in text  # the picked version
    assert "_(version 2 of 2: the one picked; the others are kept in Amicus)_" in text
