"""What the app's screens will call, headless: the assistant opener (server model names,
"use anyway"), the store opened read-only with its reason, exports to a writable folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.assistants.registry import UnverifiedModelError, find_model, verify_model
from app.engine.openai_backend import OpenAIBackend
from app.engine.server_client import ServerTarget
from app.store import Store
from app.ui import exporting
from app.ui.app import open_store
from app.ui.config import UIConfig
from app.ui.services import Services, real_assistant_opener, real_gate_opener
from tests.app.engine.conftest import state_writer
from tests.app.store.conftest import read_only


@pytest.fixture
def models(demo_models, tmp_path) -> Path:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(demo_models, root)
    return root


def _fail_verification(root: Path, name: str) -> None:
    model = find_model(name, root)
    gguf = model.gguf
    data = bytearray(gguf.read_bytes())
    data[-100] ^= 0xFF
    gguf.write_bytes(bytes(data))
    assert verify_model(model)


def test_the_opener_asks_the_server_for_each_assistants_configured_name(models):
    opener = real_assistant_opener(server=ServerTarget("http://127.0.0.1:9"), root=models,
                                   server_models={"sentencing": "criminal-law:q4"})
    sentencing, general = opener("sentencing"), opener("general")
    assert isinstance(sentencing.engine, OpenAIBackend)
    assert sentencing.engine.model == "criminal-law:q4" and general.engine.model == "general"


def test_use_anyway_loads_a_model_that_failed_verification(models):
    _fail_verification(models, "general")
    services = Services(Store.open(incognito=True), models_root=models,
                        open_assistant=real_assistant_opener(server=ServerTarget("http://127.0.0.1:9"),
                                                             root=models))
    with pytest.raises(UnverifiedModelError):
        services.assistant("general")
    assistant = services.assistant("general", allow_unverified=True)
    assert assistant.used_anyway and assistant.provenance().model.used_anyway
    services.close()


def test_use_anyway_loads_a_gate_that_failed_verification(models):
    _fail_verification(models, "intent-safety")
    services = Services(Store.open(incognito=True), models_root=models,
                        open_gate=real_gate_opener(root=models))
    with pytest.raises(UnverifiedModelError):
        services.gate()
    gate = services.gate(allow_unverified=True)
    assert gate.provenance().model.used_anyway
    services.close()


def test_a_read_only_data_folder_opens_read_only_with_its_reason(folder, monkeypatch):
    monkeypatch.setenv("AMICUS_HOME", str(folder))
    with Store.open() as store:
        store.create_conversation("general", title="kept")
    with read_only(folder):
        store, problem = open_store(UIConfig())
        try:
            assert [c.title for c in store.list_conversations()] == ["kept"]
            assert problem is not None and problem[0] == "Conversations are read-only"
            assert store.read_only is not None and store.read_only in problem[1]
            assert "kept until Amicus closes" in problem[1]
        finally:
            store.close()


def test_exports_fall_back_to_a_folder_that_can_be_written(tmp_path, monkeypatch):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    documents = tmp_path / "Documents"
    monkeypatch.setattr("platformdirs.user_documents_dir", lambda: str(documents))
    assert exporting.writable_folder(blocked / "exports") == documents
    assert exporting.writable_folder(tmp_path / "fine") == tmp_path / "fine"
    written = exporting.write(documents / "案件.md", "# 案件\n")
    assert written.read_text(encoding="utf-8") == "# 案件\n"


def test_saved_reading_asks_the_loaded_engine_unless_it_is_generating(models):
    case = [{"role": "user", "content": "The facts of the case are these. " * 60}]
    services = Services(Store.open(), models_root=models,
                        open_assistant=real_assistant_opener(root=models))
    try:
        assert services.saved_reading("general", case).states == ()  # nothing saved yet
        assistant = services.assistant("general")
        list(assistant.stream(case, params={"num_predict": 1}))
        assert "none yet" in services.saved_reading("general", case).describe()
        saved = assistant.engine.save_state()  # what closing the model does
        assert saved is not None
        reading = services.saved_reading("general", case)
        assert reading.states == (saved,) and reading.shared is not None
        # While a reply is generated the engine is busy: the model file's states instead.
        busy = services.saved_reading("general", case, generating=True)
        assert busy.states == (saved,) and busy.shared is None
        assert busy.describe().startswith("Saved reading for this model: 1 state, ")
    finally:
        services.close()


def test_a_deleted_conversations_state_saved_by_a_closing_model_is_removed(models, tmp_path):
    """Closing a model saves its cache: when that is a conversation deleted meanwhile (the
    delete found nothing yet to remove), the state goes as soon as it is written."""
    from app.assistants.runtime import Assistant, assistant_profile
    from app.engine.fake import FakeEngine
    from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore

    store = KVStateStore.default()

    class SavingOnClose(FakeEngine):
        def close(self) -> None:  # as Engine.close saves the conversation it last read
            store.save("m", list(range(MIN_SAVED_TOKENS)), state_writer(10), 10,
                       supersede=False, owner="conversation-5")

    def opener(name: str, **_options):
        model = find_model(name, models)
        return Assistant(model, assistant_profile(model), SavingOnClose("ok"))

    services = Services(Store.open(tmp_path / "amicus.db"), models_root=models,
                        open_assistant=opener)
    services.assistant("general")
    other = store.save("m", list(range(9, 9 + MIN_SAVED_TOKENS)), state_writer(10), 10,
                       supersede=False, owner="conversation-6")
    assert services.forget_reading(5) == 0  # nothing saved for it yet
    services.assistant("sentencing")  # closes general: its cache is saved, then removed
    assert [e.owner for e in store.entries()] == ["conversation-6"]
    services.close()
    assert [e.name for e in store.entries()] == [other.name]
