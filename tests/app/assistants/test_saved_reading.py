"""The saved reading a conversation's details show: the states saved for a model file (the
model not loaded), the one a loaded model would restore for a conversation, none in
incognito, and forgetting them."""

from __future__ import annotations

from app.assistants.runtime import open_assistant
from app.assistants.saved_reading import SavedReading, conversation_reading, model_reading
from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore
from tests.app.engine.conftest import state_writer


def test_a_models_states_are_counted_and_forgotten_and_no_other_models(tmp_path):
    store = KVStateStore(tmp_path / "kv-states")
    first = list(range(MIN_SAVED_TOKENS))
    second = list(range(1000, 1000 + MIN_SAVED_TOKENS + 40))
    assert store.save("model-a", first, state_writer(3 * 1024**2), 3 * 1024**2, supersede=True)
    assert store.save("model-a", second, state_writer(1024**2), 1024**2, supersede=True)
    other = store.save("model-b", first, state_writer(5000), 5000, supersede=True)
    assert other is not None

    reading = model_reading(store, "model-a")
    assert reading.size == 4 * 1024**2
    assert reading.tokens == 2 * MIN_SAVED_TOKENS + 40
    assert reading.describe() == (
        "Saved reading for this model: 2 states, 4.0 MB on disk, 552 tokens "
        "(this conversation's shows once the model is loaded)")

    reading.forget()
    assert model_reading(store, "model-a").describe() == "Saved reading: none saved"
    assert not list(store.directory.glob("model-a*"))
    assert [e.name for e in store.entries()] == [other.name]  # another model's stays


def test_incognito_and_an_empty_conversation_have_none_saved():
    assert SavedReading(incognito=True).describe() == \
        "Saved reading: none (incognito: nothing is written to disk)"
    assert SavedReading().describe() == "Saved reading: none saved"


def test_a_loaded_model_shows_the_state_that_spares_this_conversations_reading(demo_models):
    case = [{"role": "user", "content": "The facts of the case are these. " * 60}]
    other = [{"role": "user", "content": "An unrelated question about a lease. " * 60}]
    first = open_assistant("general", root=demo_models, num_ctx=2048)
    list(first.stream(case, params={"num_predict": 1}))
    first.close()  # saves the cache (KVStateStore.default(): the test's own data folder)

    again = open_assistant("general", root=demo_models, num_ctx=2048)
    try:
        reading = conversation_reading(again, case)
        assert len(reading.states) == 1
        state = reading.states[0]
        assert reading.size == state.path.stat().st_size > 0
        assert reading.shared is not None and reading.total is not None
        assert MIN_SAVED_TOKENS <= reading.shared <= reading.total <= len(state.tokens) + 8
        assert reading.describe().startswith("Saved reading: ")
        assert f"the first {reading.shared:,} of this conversation's" in reading.describe()
        assert conversation_reading(again, other).states == ()  # only the shared system
        reading.forget()
        assert not state.path.exists()
        assert conversation_reading(again, case).describe() == (
            "Saved reading: none yet (a reading of 256 tokens or more is saved when the "
            "model closes or reads another conversation)")
    finally:
        again.close()


def test_incognito_keeps_no_store_so_a_loaded_model_shows_none(demo_models):
    case = [{"role": "user", "content": "The facts of the case are these. " * 60}]
    assistant = open_assistant("general", root=demo_models, num_ctx=2048, persist=False)
    try:
        list(assistant.stream(case, params={"num_predict": 1}))
        assert conversation_reading(assistant, case) == SavedReading()
    finally:
        assistant.close()
