"""The structured forms (moral-audit frames, sentencing case) and the system prompt and
parameter editor, with their results in the store and in what the engine is sent."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Select, Static, TextArea

from app.assistants.moral_frames import render_frame
from app.assistants.sentencing_case import SentencingCase, render_case
from app.ui.screens.case_form import CaseForm
from app.ui.screens.frame_form import FrameForm
from app.ui.screens.options_editor import OptionsEditor
from app.ui.widgets.prompt_input import PromptInput

from .conftest import settle, wait_until
from .test_chat import choose, type_and_send

pytestmark = pytest.mark.anyio


async def open_screen(pilot, key: str, kind: type):
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind), what=kind.__name__)
    await pilot.pause()
    return pilot.app.screen


async def test_moral_audit_frame_form_previews_and_sends_the_exact_prompt(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        form = await open_screen(pilot, "f5", FrameForm)
        preview = form.query_one("#preview", Static)
        assert "missing field situation" in str(preview.render())
        form.query_one("#frame", Select).value = "action"
        await pilot.pause()
        assert not form.query_one("#row-norm").display  # the action frame needs no norm
        form.query_one("#situation", TextArea).load_text("A tenant's deposit is withheld.")
        form.query_one("#intention", Input).value = "Get the deposit back."
        form.query_one("#action", Input).value = "Stop paying the last month's rent."
        await pilot.pause()
        record = {"situation": "A tenant's deposit is withheld.",
                  "intention": "Get the deposit back.",
                  "action": "Stop paying the last month's rent."}
        expected = render_frame("action", record)
        assert str(preview.render()) == expected
        await pilot.click("#send")
        await settle(pilot, rig.app)
        assert rig.engine.calls[-1]["messages"][-1]["content"] == expected
        assert rig.store.messages(1)[0].content == expected


async def test_frame_form_refuses_a_missing_field(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        form = await open_screen(pilot, "f5", FrameForm)
        form.query_one("#frame", Select).value = "norm"
        form.query_one("#situation", TextArea).load_text("Someone lies.")
        await pilot.pause()
        await pilot.click("#send")
        await pilot.pause()
        assert rig.app.screen is form and "invalid" in form.query_one("#preview").classes
        await pilot.press("escape")
        assert rig.engine.calls == []


async def test_sentencing_case_form_puts_the_prompt_in_the_message_box(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "sentencing")
        form = await open_screen(pilot, "f5", CaseForm)
        form.query_one("#charges", Input).value = "盗窃罪"
        facts = "被告人于2023年3月在超市窃取商品，价值人民币1200元。"
        form.query_one("#facts", TextArea).load_text(facts)
        form.query_one("#plea", Input).value = "认罪认罚"
        await pilot.pause()
        expected = render_case(SentencingCase(
            charges="盗窃罪", facts=facts, plea="认罪认罚"))
        assert str(form.query_one("#preview", Static).render()) == expected
        await pilot.click("#insert")
        await wait_until(pilot, lambda: rig.app.screen is not form)
        prompt = rig.app.screen.query_one(PromptInput)
        assert prompt.text == expected and prompt.has_focus
        assert rig.engine.calls == []  # the user edits, then sends


async def test_forms_exist_only_for_moral_audit_and_sentencing(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "civic-qa")
        await pilot.press("f5")
        await pilot.pause()
        assert rig.app.screen.id == "main"


async def test_system_prompt_and_parameters_are_saved_and_used(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        editor = await open_screen(pilot, "f4", OptionsEditor)
        system = editor.query_one("#system", TextArea)
        assert system.text.startswith("You are Amicus Moral Audit")  # the Modelfile's
        temperature = editor.query_one("#param-temperature", Input)
        assert temperature.value == "" and str(temperature.placeholder) == "default 0.2"
        system.load_text("Answer in one sentence.")
        temperature.value = "0.7"
        editor.query_one("#param-num_predict", Input).value = "64"
        await pilot.click("#save")
        await wait_until(pilot, lambda: rig.app.screen is not editor)
        saved = rig.store.get_conversation(1)
        assert saved.system_prompt == "Answer in one sentence."
        assert saved.parameters == {"temperature": 0.7, "num_predict": 64}
        await type_and_send(pilot, "hello")
        await settle(pilot, rig.app)
        call = rig.engine.calls[-1]
        assert call["messages"][0] == {"role": "system", "content": "Answer in one sentence."}
        assert call["params"].temperature == 0.7 and call["params"].num_predict == 64
        assert call["params"].top_p == 0.9  # the Modelfile's, untouched


async def test_parameter_editor_rejects_bad_values_and_resets(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        editor = await open_screen(pilot, "f4", OptionsEditor)
        editor.query_one("#param-top_p", Input).value = "1.5"
        await pilot.click("#save")
        await pilot.pause()
        assert rig.app.screen is editor
        assert "top_p must be from 0.0 to 1.0" in str(editor.query_one("#errors").render())
        await pilot.click("#reset")
        await pilot.click("#save")
        await wait_until(pilot, lambda: rig.app.screen is not editor)
        saved = rig.store.get_conversation(1)
        assert saved.system_prompt is None and saved.parameters is None  # the Modelfile's
