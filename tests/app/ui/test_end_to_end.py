"""The app with the real engine and the real intent-safety classifier on the demo GGUFs
(random weights: the text is meaningless, the machinery is real)."""

from __future__ import annotations

import pytest

from app.store import Store
from app.ui.app import AmicusApp
from app.ui.config import UIConfig
from app.ui.services import Services, real_assistant_opener, real_gate_opener
from app.ui.widgets.chat_view import ChatView
from app.ui.widgets.status_bar import StatusBar

from .conftest import settle
from .test_chat import type_and_send

pytestmark = pytest.mark.anyio


async def test_a_turn_through_the_gate_and_the_real_engine(demo_models):
    store = Store.open()
    conversation = store.create_conversation("moral-audit", title="e2e", safety_gate=True,
                                             parameters={"num_predict": 24, "seed": 7})
    services = Services(store, open_assistant=real_assistant_opener(root=demo_models),
                        open_gate=real_gate_opener(root=demo_models), models_root=demo_models)
    app = AmicusApp(UIConfig(), services)
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.screen.conversation.id == conversation.id
        await type_and_send(pilot, "May I keep a wallet I found on the bus?")
        await pilot.pause()
        await settle(pilot, app)
        messages = store.messages(conversation.id)
        assert services.gate_loaded
        if messages[0].status == "blocked":  # the demo classifier's verdict is arbitrary
            assert len(messages) == 1 and messages[0].blocked_probability >= 0.5
            return
        user, reply = messages
        assert (user.status, reply.status) == ("complete", "complete")
        assert 0 < reply.completion_tokens <= 24 and reply.prompt_tokens > 0
        assert services.loaded is not None and services.loaded.name == "moral-audit"
        view = app.screen.query_one(ChatView).messages()[-1]
        assert view.answer_text == reply.content
        assert f"{reply.completion_tokens} tokens" in app.screen.query_one(StatusBar).figures
    services.close()
