"""The chat pane's part of the contract with the worker: messages of a turn that has ended
change nothing, and turn messages stay in the pane."""

from __future__ import annotations

import threading

import pytest

from app.engine.fake import FakeEngine
from app.ui.messages import StreamChunk, TurnFinished, TurnMessage
from app.ui.widgets.chat_pane import ChatPane
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.status_bar import StatusBar

from .conftest import settle, wait_until
from .test_chat import type_and_send

pytestmark = pytest.mark.anyio


async def test_messages_of_an_ended_turn_change_nothing(rig_factory):
    gate = threading.Event()
    rig = rig_factory(FakeEngine(["One", " two"], gate=gate))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        pane = rig.app.screen.query_one(ChatPane)
        await type_and_send(pilot, "hello")
        await wait_until(pilot, lambda: pane.job is not None)
        ended = pane.job
        gate.set()
        await settle(pilot, rig.app)
        view = rig.app.screen.query_one(ChatView).messages()[-1]
        answer, state = view.answer_text, pane.query_one(StatusBar).state
        # A late message of that turn (as a worker still finishing would post it).
        pane.post_message(StreamChunk(ended, "", " late words"))
        pane.post_message(TurnFinished(ended, None))
        await pilot.pause()
        await pilot.pause()
        assert view.answer_text == answer and not view.streaming
        assert pane.query_one(StatusBar).state == state == "ready"
        assert rig.store.messages(1)[-1].content == answer
        assert pane.job is None and not rig.app.busy


def test_turn_messages_do_not_bubble_past_the_pane():
    from app.ui import messages

    turn_messages = [value for value in vars(messages).values()
                     if isinstance(value, type) and issubclass(value, TurnMessage)]
    assert len(turn_messages) == 10  # TurnMessage and its nine kinds
    assert all(kind.bubble is False for kind in turn_messages)
