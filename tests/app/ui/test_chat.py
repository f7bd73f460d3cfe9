"""Sending, streaming, cancelling and thinking, with a scripted FakeEngine."""

from __future__ import annotations

import threading

import pytest

from app.assistants.sentencing_case import NOT_LEGAL_ADVICE
from app.engine.fake import FakeEngine
from app.ui.config import UIConfig
from app.ui.messages import ConversationChosen
from app.ui.screens.choice_dialog import ChoiceDialog
from app.ui.widgets.assistant_picker import AssistantPicker
from app.ui.widgets.chat_header import ChatHeader
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.conversation_list import ConversationList
from app.ui.widgets.message_view import MessageView
from app.ui.widgets.prompt_input import PromptInput
from app.ui.widgets.status_bar import StatusBar

from .conftest import settle, wait_until

pytestmark = pytest.mark.anyio
LONG = [f" word{i}" for i in range(400)]


async def type_and_send(pilot, text: str) -> None:
    pilot.app.screen.query_one(PromptInput).focus()
    pilot.app.screen.query_one(PromptInput).set_text(text)
    await pilot.press("enter")


async def test_startup_shows_assistants_and_loads_no_model(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        picker = rig.app.screen.query_one(AssistantPicker)
        labels = [str(picker.get_option_at_index(i).prompt) for i in range(picker.option_count)]
        assert [label.splitlines()[0] for label in labels] == [
            "moral-audit", "civic-qa", "sentencing", "general"]
        assert all("demo: meaningless text" in label for label in labels)
        header = str(rig.app.screen.query_one(ChatHeader).render())
        assert "DEMO MODEL" in header and "meaningless" in header
        await pilot.pause()
        assert rig.opened == []  # models load on first use, never at startup
        assert rig.app.services.loaded is None


async def test_send_streams_the_reply_and_stores_the_turn(rig_factory):
    rig = rig_factory(FakeEngine("Hello **there**, in `code`."))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "租屋押金可以不退嗎？")
        await settle(pilot, rig.app)
        [conversation] = rig.store.list_conversations("moral-audit")
        assert conversation.title == "租屋押金可以不退嗎？"
        user, reply = rig.store.messages(conversation.id)
        assert (user.role, user.content, user.status) == ("user", "租屋押金可以不退嗎？",
                                                          "complete")
        assert reply.content == "Hello **there**, in `code`." and reply.status == "complete"
        assert reply.completion_tokens == 4 and reply.tokens_per_second is not None
        views = rig.app.screen.query_one(ChatView).messages()
        assert [v.role for v in views] == ["user", "assistant"]
        assert views[1].answer_text == reply.content and not views[1].streaming
        assert rig.app.screen.query_one(PromptInput).text == ""
        figures = rig.app.screen.query_one(StatusBar).figures
        assert "4 tokens" in figures and "/4096" in figures
        assert rig.app.screen.query_one(ConversationList).ids == [conversation.id]
        assert rig.opened == ["moral-audit"]
        sent = rig.engine.calls[-1]["messages"]
        assert sent[0]["role"] == "system" and sent[-1] == {"role": "user",
                                                            "content": "租屋押金可以不退嗎？"}


async def test_reading_the_prompt_then_streaming(rig_factory):
    gate = threading.Event()
    rig = rig_factory(FakeEngine(["One", " two", " three"], gate=gate))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "hi")
        status = rig.app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: "reading the prompt" in status.state)
        reply = rig.app.screen.query_one(ChatView).messages()[-1]
        assert reply.streaming and reply.note.startswith("reading the prompt")
        # Escape is offered (footer) only while a reply is being generated.
        assert rig.app.screen.check_action("cancel", ()) is True
        gate.set()
        await settle(pilot, rig.app)
        assert reply.answer_text == "One two three" and not reply.streaming
        assert rig.app.screen.check_action("cancel", ()) is False


async def test_follow_up_turns_send_the_history(rig_factory):
    rig = rig_factory(FakeEngine(replies=["First answer.", "Second answer."]))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "first")
        await settle(pilot, rig.app)
        await type_and_send(pilot, "second")
        await settle(pilot, rig.app)
        sent = [m for m in rig.engine.calls[-1]["messages"] if m["role"] != "system"]
        assert sent == [{"role": "user", "content": "first"},
                        {"role": "assistant", "content": "First answer."},
                        {"role": "user", "content": "second"}]


async def test_a_second_message_waits_for_the_first(rig_factory):
    gate = threading.Event()
    rig = rig_factory(FakeEngine(["slow"], gate=gate))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "one")
        await wait_until(pilot, lambda: rig.app.screen.pane.job is not None
                         and rig.app.screen.pane.job.reply_id is not None)
        await type_and_send(pilot, "two")
        await pilot.pause()
        assert rig.app.screen.query_one(PromptInput).text == "two"  # kept, not sent
        gate.set()
        await settle(pilot, rig.app)
        assert len(rig.engine.calls) == 1


async def test_escape_cancels_and_keeps_the_partial_reply(rig_factory):
    rig = rig_factory(FakeEngine(LONG, token_delay_s=0.01))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "tell me everything")
        await wait_until(pilot, lambda: rig.app.screen.pane.job and rig.app.screen.pane.job.answer,
                         timeout=30, what="the first words of the reply")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        await pilot.press("k")
        await wait_until(pilot, lambda: rig.store.messages(1)[-1].status == "cancelled")
        reply = rig.store.messages(1)[-1]
        assert 0 < len(reply.content) < len("".join(LONG))
        view = rig.app.screen.query_one(ChatView).messages()[-1]
        assert view.answer_text == reply.content and "cancelled" in view.note


async def test_escape_then_discard_restores_the_message(rig_factory):
    rig = rig_factory(FakeEngine(LONG, token_delay_s=0.01))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "tell me everything")
        await wait_until(pilot, lambda: rig.app.screen.pane.job and rig.app.screen.pane.job.answer,
                         timeout=30, what="the first words of the reply")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ChoiceDialog))
        await pilot.press("d")
        await wait_until(pilot, lambda: rig.app.screen.query_one(PromptInput).text)
        assert rig.app.screen.query_one(PromptInput).text == "tell me everything"
        assert rig.store.messages(1) == []
        assert rig.app.screen.query_one(ChatView).messages() == []


async def test_on_cancel_discard_from_the_config_asks_nothing(rig_factory):
    rig = rig_factory(FakeEngine(LONG, token_delay_s=0.01),
                      config=UIConfig(on_cancel="discard"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "go")
        await wait_until(pilot, lambda: rig.app.screen.pane.job and rig.app.screen.pane.job.answer,
                         timeout=30, what="the first words of the reply")
        await pilot.press("escape")
        await settle(pilot, rig.app)
        assert not isinstance(rig.app.screen, ChoiceDialog)
        assert rig.store.messages(1) == []
        assert rig.app.screen.query_one(PromptInput).text == "go"


async def test_on_cancel_keep_from_the_config_asks_nothing(rig_factory):
    rig = rig_factory(FakeEngine(LONG, token_delay_s=0.01), config=UIConfig(on_cancel="keep"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "go")
        await wait_until(pilot, lambda: rig.app.screen.pane.job and rig.app.screen.pane.job.answer,
                         timeout=30, what="the first words of the reply")
        await pilot.press("escape")
        await settle(pilot, rig.app)
        assert not isinstance(rig.app.screen, ChoiceDialog)
        assert [m.status for m in rig.store.messages(1)] == ["complete", "cancelled"]
        assert rig.app.screen.query_one(PromptInput).text == ""


async def test_thinking_is_shown_collapsed_and_toggled(rig_factory):
    rig = rig_factory(FakeEngine(["<think>", "Weighing", " it.", "</think>", "Answer."]))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "think first")
        await settle(pilot, rig.app)
        reply = rig.store.messages(1)[-1]
        assert (reply.thinking, reply.content) == ("Weighing it.", "Answer.")
        view = rig.app.screen.query_one(ChatView).messages()[-1]
        from textual.widgets import Collapsible

        box = view.query_one(Collapsible)
        assert box.display and box.collapsed
        await pilot.press("ctrl+o")
        assert not box.collapsed
        assert rig.engine.calls[-1]["think"] is True  # moral-audit thinks by default
        await pilot.press("ctrl+t")
        assert rig.store.get_conversation(1).thinking is False
        assert "thinking: off" in str(rig.app.screen.query_one(ChatHeader).render())
        await type_and_send(pilot, "now without")
        await settle(pilot, rig.app)
        assert rig.engine.calls[-1]["think"] is False


async def test_thinking_switch_only_for_models_that_can(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "general")
        await pilot.press("ctrl+t")
        await type_and_send(pilot, "hello")
        await settle(pilot, rig.app)
        assert rig.engine.calls[-1]["think"] is None  # Llama-2: the template's default
        assert "thinking" not in str(rig.app.screen.query_one(ChatHeader).render())


async def test_civic_qa_conversations_start_without_thinking(rig_factory):
    rig = rig_factory()
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "civic-qa")
        await type_and_send(pilot, "押金")
        await settle(pilot, rig.app)
        assert rig.engine.calls[-1]["think"] is False


async def test_sentencing_answers_carry_the_notice(rig_factory):
    rig = rig_factory(FakeEngine("判处有期徒刑一年。"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await choose(pilot, "sentencing")
        await type_and_send(pilot, "盗窃")
        await settle(pilot, rig.app)
        reply = rig.store.messages(1)[-1]
        assert reply.content.startswith("判处有期徒刑一年。") and reply.content.endswith(
            NOT_LEGAL_ADVICE)
        await type_and_send(pilot, "再问")
        await settle(pilot, rig.app)
        history = rig.engine.calls[-1]["messages"]
        assert all(NOT_LEGAL_ADVICE not in m["content"] for m in history)


class HoldAfter(threading.Event):
    """A FakeEngine gate that lets `count` tokens through, then holds until set()."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self._left = count

    def wait(self, timeout: float | None = None) -> bool:
        if self._left > 0:
            self._left -= 1
            return True
        return super().wait(timeout)


async def test_switching_conversations_while_streaming(rig_factory):
    # The stream holds after 20 words while the user switches away and back (however slow
    # the machine, the reply cannot end before the test looks).
    flowing = HoldAfter(20)
    rig = rig_factory(FakeEngine(LONG[:60], token_delay_s=0.01, gate=flowing))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await type_and_send(pilot, "long one")
        await wait_until(pilot, lambda: rig.app.screen.pane.job and rig.app.screen.pane.job.answer,
                         timeout=30, what="the first words of the reply")
        await pilot.press("ctrl+n")  # away: a new, empty conversation
        assert rig.app.screen.query_one(ChatView).messages() == []
        # And back, mid-stream: as a click in the list does, through the screen's queue.
        rig.app.screen.post_message(ConversationChosen(1))
        await wait_until(pilot, lambda: rig.app.screen.conversation is not None)
        assert rig.app.screen.pane.job is not None  # still streaming
        flowing.set()
        await settle(pilot, rig.app)
        view = rig.app.screen.query_one(ChatView).messages()[-1]
        expected = "".join(LONG[:60]).strip()  # the engine drops the leading blank
        assert view.answer_text == expected == rig.store.messages(1)[-1].content


async def choose(pilot, name: str) -> None:
    picker = pilot.app.screen.query_one(AssistantPicker)
    picker.highlighted = [picker.get_option_at_index(i).id
                          for i in range(picker.option_count)].index(name)
    await wait_until(pilot, lambda: pilot.app.screen.entry.name == name)
    await pilot.pause()
    assert isinstance(pilot.app.screen.query_one(ChatView).messages(), list)
    assert isinstance(pilot.app.screen.query(MessageView), object)
