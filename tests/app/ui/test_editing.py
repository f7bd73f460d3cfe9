"""The editing loop: regenerate the last reply and browse its versions, edit and resend the
last message, the prompt history on Up/Down (per assistant, stored, never in incognito, and
never in the way of moving through a message of several lines); and the user's own
messages shown as typed."""

from __future__ import annotations

import pytest
from textual.widgets import Markdown, Static

from app.engine.fake import FakeEngine
from app.store import Store
from app.ui.config import UIConfig
from app.ui.screens.choice_dialog import ChoiceDialog
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.prompt_input import PromptInput

from .conftest import settle, wait_until
from .test_chat import LONG, choose, type_and_send

pytestmark = pytest.mark.anyio


def views(app):
    return app.screen.query_one(ChatView).messages()


def texts(app) -> list[str]:
    return [view.answer_text for view in views(app)]


def header(view) -> str:
    return str(view.query_one(".header").render())


def sent(engine) -> list[dict[str, str]]:
    return [m for m in engine.calls[-1]["messages"] if m["role"] != "system"]


async def test_regenerate_keeps_the_earlier_reply_as_a_version(rig_factory):
    rig = rig_factory(FakeEngine(replies=["First reply.", "Second reply.", "Third reply."]))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "question")
        await settle(pilot, rig.app)
        await pilot.press("alt+r")
        await settle(pilot, rig.app)
        assert texts(rig.app) == ["question", "Second reply."]
        assert "version 2 of 2" in header(views(rig.app)[-1])
        # The same question and history were sent again (no second copy of the question).
        assert sent(rig.engine) == [{"role": "user", "content": "question"}]
        _user, reply = rig.store.messages(1)
        assert [m.content for m in rig.store.alternatives(reply.id)] == ["First reply.",
                                                                         "Second reply."]
        assert reply.provenance is not None and rig.store.prompt_history("moral-audit") == [
            "question"]  # regenerating sends no new prompt
        await pilot.press("alt+left")  # browse: the earlier version is shown and picked
        await wait_until(pilot, lambda: texts(rig.app)[-1] == "First reply.")
        assert "version 1 of 2" in header(views(rig.app)[-1])
        assert rig.store.messages(1)[-1].content == "First reply."
        await pilot.press("alt+left")  # no earlier one: nothing changes
        await pilot.pause()
        assert rig.store.messages(1)[-1].content == "First reply."
        # The next turn follows the version picked.
        await type_and_send(pilot, "follow-up")
        await settle(pilot, rig.app)
        assert sent(rig.engine)[1] == {"role": "assistant", "content": "First reply."}
        # Clicking the arrows of a message's version browses it too.
        reply_view = next(v for v in views(rig.app) if "version 1 of 2" in header(v))
        arrow = header(reply_view).index("›")
        await pilot.click(reply_view.query_one(".header"), offset=(arrow, 0))
        await wait_until(pilot, lambda: "Second reply." in texts(rig.app))
        # The follow-up went with the first version: the second has no follow-up.
        assert texts(rig.app) == ["question", "Second reply."]


async def test_regenerate_needs_a_reply_and_a_cancelled_one_gives_its_place_back(rig_factory):
    rig = rig_factory(FakeEngine(replies=["Kept reply.", LONG], token_delay_s=0.01))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("alt+r")  # no conversation yet
        await pilot.pause()
        assert rig.engine.calls == []
        await type_and_send(pilot, "question")
        await settle(pilot, rig.app)
        await pilot.press("alt+r")
        await wait_until(pilot, lambda: rig.app.screen.pane.job is not None
                         and rig.app.screen.pane.job.answer, timeout=30)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        assert "message box" not in rig.app.screen.message  # nothing typed to give back
        await pilot.press("d")
        await wait_until(pilot, lambda: texts(rig.app) == ["question", "Kept reply."])
        assert [m.content for m in rig.store.messages(1)] == ["question", "Kept reply."]
        assert rig.store.alternative_positions(1) == {}
        assert rig.app.screen.query_one(PromptInput).text == ""


async def test_edit_and_resend_the_last_message(rig_factory):
    rig = rig_factory(FakeEngine(replies=["About rent.", "Rent is fair.", "About the deposit."]))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "first question")
        await settle(pilot, rig.app)
        await type_and_send(pilot, "Is the rent fair?")
        await settle(pilot, rig.app)
        prompt = rig.app.screen.query_one(PromptInput)
        prompt.set_text("a draft")
        await pilot.press("alt+e")
        assert prompt.text == "Is the rent fair?" and "editing" in str(prompt.border_title)
        await pilot.press("escape")  # leave editing: the draft comes back
        assert prompt.text == "a draft" and prompt.border_title is None
        await pilot.press("alt+e")
        prompt.set_text("Is the deposit fair?")
        await pilot.press("enter")
        await settle(pilot, rig.app)
        assert texts(rig.app) == ["first question", "About rent.", "Is the deposit fair?",
                                  "About the deposit."]
        assert "version 2 of 2" in header(views(rig.app)[2])
        assert prompt.text == "" and prompt.border_title is None
        # The model saw the history before the edited message, then the new text.
        assert sent(rig.engine) == [{"role": "user", "content": "first question"},
                                    {"role": "assistant", "content": "About rent."},
                                    {"role": "user", "content": "Is the deposit fair?"}]
        question = rig.store.messages(1)[2]
        assert [m.content for m in rig.store.alternatives(question.id)] == [
            "Is the rent fair?", "Is the deposit fair?"]
        # Browsing back to the first version brings back its own reply.
        assert rig.store.messages(1)[-1].content == "About the deposit."
        await pilot.press("alt+left")
        await wait_until(pilot, lambda: texts(rig.app)[2:] == ["Is the rent fair?",
                                                               "Rent is fair."])
        assert "version 1 of 2" in header(views(rig.app)[2])
        assert rig.store.prompt_history("moral-audit")[-1] == "Is the deposit fair?"


async def test_an_edit_the_gate_blocks_is_kept_as_a_blocked_version(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "a fair question")
        await settle(pilot, rig.app)
        await pilot.press("ctrl+g")
        await pilot.press("alt+e")
        rig.app.screen.query_one(PromptInput).set_text("a forbidden plan")
        await pilot.press("enter")
        await settle(pilot, rig.app)
        [blocked] = rig.store.messages(1)
        assert (blocked.content, blocked.status) == ("a forbidden plan", "blocked")
        assert blocked.blocked_probability == 0.93
        assert len(rig.store.alternatives(blocked.id)) == 2
        assert texts(rig.app) == ["a forbidden plan"]  # instead of the first version
        assert "Blocked" in views(rig.app)[0].note
        assert len(rig.engine.calls) == 1  # only the first question reached the model


async def test_user_messages_are_shown_as_typed_and_replies_as_markdown(rig_factory):
    typed = "【认罪认罚及态度】\n被告人  自愿认罪。\n**not bold** and `not code` [x](y)"
    rig = rig_factory(FakeEngine("**bold** reply"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, typed)
        await settle(pilot, rig.app)
        user_view, reply_view = views(rig.app)
        body = user_view.query_one(".body", Static)
        assert not isinstance(body, Markdown)
        assert str(body.render()).splitlines() == typed.splitlines()
        assert isinstance(reply_view.query_one(".body"), Markdown)
        assert rig.store.messages(1)[0].content == typed


async def prompt_history_walk(pilot, prompt: PromptInput) -> None:
    """Three prompts were sent: Up walks back, Down forward, then the draft returns."""
    prompt.focus()
    prompt.set_text("draft")
    await pilot.press("up")
    assert prompt.text == "third\nwith two lines"
    assert prompt.cursor_location == (0, len("third"))  # on its first line: Up goes on
    await pilot.press("up")
    assert prompt.text == "second"
    await pilot.press("up", "up")  # "first", then nothing older: the text stays
    assert prompt.text == "first"
    await pilot.press("down", "down")
    assert prompt.text == "third\nwith two lines" and prompt.cursor_location == (1, 14)
    await pilot.press("down")
    assert prompt.text == "draft"


async def test_prompt_history_on_up_and_down(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        for text in ("first", "second", "third\nwith two lines"):
            await type_and_send(pilot, text)
            await settle(pilot, rig.app)
        prompt = rig.app.screen.query_one(PromptInput)
        assert prompt.sent_prompts == ["first", "second", "third\nwith two lines"]
        await prompt_history_walk(pilot, prompt)
        # Inside a message of several lines the arrows move the cursor instead.
        prompt.set_text("line one\nline two\nline three")
        prompt.move_cursor((1, 2))
        await pilot.press("up")
        assert prompt.text == "line one\nline two\nline three"
        assert prompt.cursor_location[0] == 0
        prompt.move_cursor((1, 2))
        await pilot.press("down")
        assert prompt.cursor_location[0] == 2 and prompt.text.startswith("line one")
        await pilot.press("down")  # on the last line, with nothing later: stays
        assert prompt.text.startswith("line one")
        # Each assistant has its own history; it is stored.
        await choose(pilot, "civic-qa")
        assert prompt.sent_prompts == []
        await type_and_send(pilot, "押金？")
        await settle(pilot, rig.app)
        assert rig.store.prompt_history("civic-qa") == ["押金？"]
        await choose(pilot, "moral-audit")
        assert prompt.sent_prompts == ["first", "second", "third\nwith two lines"]


async def test_prompt_history_survives_a_restart_and_goes_with_its_conversation(rig_factory):
    store = Store.open()  # the data folder's file
    chat = store.create_conversation("moral-audit", title="old")
    store.add_message(chat.id, "user", "first")
    store.add_prompt("moral-audit", "first")
    store.add_prompt("moral-audit", "second")
    store.add_prompt("moral-audit", "third\nwith two lines")
    rig = rig_factory(store=store)
    async with rig.app.run_test(size=(120, 40)) as pilot:
        prompt = rig.app.screen.query_one(PromptInput)
        await prompt_history_walk(pilot, prompt)
        await pilot.press("f8")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        await pilot.press("y")
        await wait_until(pilot, lambda: prompt.sent_prompts == ["second",
                                                                "third\nwith two lines"])


async def test_no_prompt_history_in_incognito(rig_factory):
    rig = rig_factory(store=Store.open(incognito=True), config=UIConfig(incognito=True))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "secret")
        await settle(pilot, rig.app)
        prompt = rig.app.screen.query_one(PromptInput)
        assert prompt.sent_prompts == [] and rig.store.prompt_history("moral-audit") == []
        await pilot.press("up")
        assert prompt.text == ""
