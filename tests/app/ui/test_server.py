"""The app on a server (`--endpoint`): each assistant asked for under its configured model
name, the header naming the server and model instead of the demo warning, the reply's
provenance naming them, and the model manager listing what the server offers."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from app.store import Store
from app.ui.app import AmicusApp
from app.ui.config import UIConfig
from app.ui.screens.model_manager import ModelManager
from app.ui.services import Services, real_assistant_opener
from app.ui.widgets.chat_header import ChatHeader
from tests.app.assistants.test_server import server  # noqa: F401 (GET /v1/models)
from tests.app.engine.test_openai_backend import DONE, chunk, fake  # noqa: F401

from .conftest import settle, wait_until
from .test_chat import type_and_send

pytestmark = pytest.mark.anyio
TABLE = {"sentencing": "demonbyron/qwen3-4b-CriminalLaw-cn:q4", "moral-audit": "ma:q4"}


async def test_a_server_answers_under_the_configured_name(fake, demo_models):  # noqa: F811
    fake.script = [chunk(role="assistant"), chunk(content="From the server."),
                   chunk(finish="stop"), DONE]
    config = UIConfig(endpoint=fake.url, server_models=TABLE)
    services = Services(Store.open(incognito=True), models_root=demo_models,
                        open_assistant=real_assistant_opener(
                            endpoint=fake.url, root=demo_models, server_models=TABLE))
    app = AmicusApp(config, services)
    async with app.run_test(size=(120, 40)) as pilot:
        header = str(app.screen.query_one(ChatHeader).render())
        assert f"server {fake.url}, model ma:q4" in header and "DEMO MODEL" not in header
        await type_and_send(pilot, "hello")
        await settle(pilot, app)
        [request] = fake.requests
        assert request["body"]["model"] == "ma:q4"
        reply = services.store.messages(1)[-1]
        assert reply.content == "From the server."
        backend = reply.provenance.backend
        assert (backend.kind, backend.server_model) == ("endpoint", "ma:q4")
        assert backend.url.startswith(fake.url)


async def test_the_model_manager_lists_the_servers_models(rig_factory, server):  # noqa: F811
    rig = rig_factory(config=UIConfig(endpoint=server, server_models=TABLE))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
        table = rig.app.screen.query_one("#server-table", DataTable)
        await wait_until(pilot, lambda: table.row_count == 3, timeout=15)
        rows = [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(3)]
        assert rows == [("moral-audit", "-"),
                        ("demonbyron/qwen3-4b-CriminalLaw-cn:q4", "sentencing"),
                        ("llama3.2:latest", "-")]
        note = str(rig.app.screen.query_one("#server-note").render())
        assert "moral-audit (asks for ma:q4)" in note and "civic-qa (asks for civic-qa)" in note
        assert "[server_models]" in note


async def test_a_server_that_cannot_be_listed_says_why(rig_factory):
    rig = rig_factory(config=UIConfig(endpoint="http://127.0.0.1:9"))
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
        note = rig.app.screen.query_one("#server-note")
        await wait_until(pilot, lambda: "could not be listed" in str(note.render()),
                         timeout=15)
        assert "127.0.0.1:9" in str(note.render())
        assert rig.app.screen.query_one("#model-table", DataTable).row_count == 5
