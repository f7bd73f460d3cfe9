"""The app on servers: the config's server settings (gate_endpoint, gate_api, api_key_file,
ca_file) and the gate and chat opened through the shared client with them."""

from __future__ import annotations

import pytest

from app.assistants.gate import IntentGate
from app.engine.credentials import Secret
from app.engine.remote_classifier import RemoteClassifier
from app.ui.config import ConfigError, UIConfig, load_config
from app.ui.services import real_gate_opener, server_targets
from tests.loopback import Loopback, Reply

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
