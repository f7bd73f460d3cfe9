"""The app on servers: the config's server settings (gate_endpoint, gate_api, api_key_file,
ca_file) and the gate and chat opened through the shared client with them; each assistant
asked for under its configured model name, the header naming the server and model instead
of the demo warning, the reply's provenance naming them, and the model manager listing
what the server offers (with the same key)."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from app.assistants.gate import IntentGate
from app.engine.credentials import Secret
from app.engine.remote_classifier import RemoteClassifier
from app.store import Store
from app.ui.app import AmicusApp
from app.ui.config import ConfigError, UIConfig, load_config
from app.ui.screens.model_manager import ModelManager
from app.ui.services import Services, real_assistant_opener, real_gate_opener, server_targets
from app.ui.widgets.chat_header import ChatHeader
from tests.loopback import Loopback, Reply, answer_for, chat_app

from .conftest import settle, wait_until
from .test_chat import type_and_send

KEY = "sk-app-5e1d2c3b4a"


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch):
    for name in ("AMICUS_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _write(home, text):
    (home / "config.toml").write_text(text, encoding="utf-8")


def test_server_settings_are_read_and_checked(_isolated_home, tmp_path):
    _write(_isolated_home, f"""
endpoint = "http://127.0.0.1:11434"
gate_endpoint = "https://gpu.clinic.lan:8001"
gate_api = "llama-server"
api_key_file = "{tmp_path / 'key'}"
ca_file = "~/clinic-ca.pem"
""")
    config = load_config()
    assert config.gate_endpoint == "https://gpu.clinic.lan:8001"
    assert config.gate_api == "llama-server"
    assert config.api_key_file == tmp_path / "key"
    assert str(config.ca_file).endswith("clinic-ca.pem") and "~" not in str(config.ca_file)
    _write(_isolated_home, 'gate_api = "ollama"')
    with pytest.raises(ConfigError, match="gate_api must be one of vllm, llama-server"):
        load_config()


def test_no_server_named_reads_no_key(tmp_path):
    # A key file that would be refused is never opened when nothing needs it.
    assert server_targets(UIConfig(api_key_file=tmp_path / "missing")) == (None, None)


def test_the_gate_runs_on_its_server_with_the_configs_key(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)

    def classifier(request):
        return {"/tokenize": Reply(body={"tokens": [1, 2]}),
                "/detokenize": Reply(body={"content": "text"}),
                "/rerank": Reply(body={"results": [{"index": 0,
                                                    "relevance_score": 0.25}]})}[request.path]

    with Loopback(classifier, api_key=KEY) as server:
        config = UIConfig(gate_endpoint=server.url, gate_api="llama-server",
                          api_key_file=key_file)
        chat, gate_target = server_targets(config)
        assert chat is None and gate_target is not None
        assert gate_target.options.api_key == Secret(KEY)
        gate = real_gate_opener(server=gate_target)()
        assert isinstance(gate, IntentGate)
        assert isinstance(gate._classifier, RemoteClassifier)
        verdict = gate.check([{"role": "assistant", "content": "Hello."}], "I step closer.")
        gate.close()
    assert verdict.label_text == "unsafe" and verdict.prob_unsafe == pytest.approx(0.75)
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in server.requests)


TABLE = {"sentencing": "demonbyron/qwen3-4b-CriminalLaw-cn:q4", "moral-audit": "ma:q4"}
OFFERED = ("moral-audit", "demonbyron/qwen3-4b-CriminalLaw-cn:q4", "llama3.2:latest")


def ollama_like(request):
    """Several models (as a local Ollama serves them), and chat answers."""
    if request.path == "/v1/models":
        return Reply(body={"object": "list", "data": [{"id": m} for m in OFFERED]})
    return chat_app()(request)


def app_on(server_url: str, demo_models, key_file) -> AmicusApp:
    """The app as build_app makes it, with the demo models' Modelfiles, on `server_url`."""
    config = UIConfig(endpoint=server_url, server_models=TABLE, api_key_file=key_file)
    chat, _gate = server_targets(config)
    services = Services(Store.open(incognito=True), models_root=demo_models,
                        open_assistant=real_assistant_opener(server=chat, root=demo_models,
                                                             server_models=TABLE))
    return AmicusApp(config, services)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "key"
    path.write_text(KEY)
    path.chmod(0o600)
    return path


@pytest.mark.anyio
async def test_a_server_answers_under_the_configured_name(demo_models, key_file):
    with Loopback(ollama_like, api_key=KEY) as server:
        app = app_on(server.url, demo_models, key_file)
        async with app.run_test(size=(120, 40)) as pilot:
            header = str(app.screen.query_one(ChatHeader).render())
            assert f"server {server.url}, model ma:q4" in header
            assert "DEMO MODEL" not in header
            await type_and_send(pilot, "hello")
            await settle(pilot, app)
    [request] = server.posts("/v1/chat/completions")
    assert request.body["model"] == "ma:q4"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    reply = app.services.store.messages(1)[-1]
    assert reply.content == answer_for("hello")
    backend = reply.provenance.backend
    assert (backend.kind, backend.server_model) == ("endpoint", "ma:q4")
    assert backend.url.startswith(server.url)


@pytest.mark.anyio
async def test_the_model_manager_lists_the_servers_models(rig_factory, key_file):
    with Loopback(ollama_like, api_key=KEY) as server:
        rig = rig_factory(config=UIConfig(endpoint=server.url, server_models=TABLE,
                                          api_key_file=key_file))
        async with rig.app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f3")
            await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
            table = rig.app.screen.query_one("#server-table", DataTable)
            await wait_until(pilot, lambda: table.row_count == 3, timeout=15)
            rows = [tuple(str(cell) for cell in table.get_row_at(i)) for i in range(3)]
            note = str(rig.app.screen.query_one("#server-note").render())
    assert rows == [("moral-audit", "-"), ("demonbyron/qwen3-4b-CriminalLaw-cn:q4", "sentencing"),
                    ("llama3.2:latest", "-")]
    assert "moral-audit (asks for ma:q4)" in note and "civic-qa (asks for civic-qa)" in note
    assert "[server_models]" in note
    assert [r.headers.get("Authorization") for r in server.requests] == [f"Bearer {KEY}"]


@pytest.mark.anyio
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
