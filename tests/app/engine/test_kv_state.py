"""Saved KV states on the real engine: restored with equal logits, keyed by model and token
prefix, never trusted when damaged, kept within a disk budget, never written without a
store (incognito)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from app.engine.engine import Engine
from app.engine.events import PromptStarted
from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore, model_key
from converters.llama_runtime import last_logits
from tests.app.engine.conftest import state_writer

FIRST = {"temperature": 0, "num_predict": 1}
FACTS = "The facts of the case are these. " * 60


def case(question: str = "What now?") -> list[dict[str, str]]:
    return [{"role": "user", "content": FACTS + question}]


def read(engine: Engine, messages) -> tuple[PromptStarted, np.ndarray]:
    events = list(engine.stream(messages, params=FIRST))
    return events[0], last_logits(engine._llm)


@pytest.fixture
def store(tmp_path) -> KVStateStore:
    return KVStateStore(tmp_path / "kv-states")


def test_a_state_saved_on_close_is_restored_with_equal_logits(models, store):
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as first:
        started, whole = read(first, case())
        assert started.restored == 0 and not store.entries()  # saved only when lost
        # The same prompt again reads only its last token, alone, as a restore does: its
        # logits are the bit-exact reference (a token read alone and one read inside a
        # chunk go through different CPU kernels and differ in the last bits).
        again, expected = read(first, case())
        assert again.evaluating == 1
        np.testing.assert_allclose(expected, whole, rtol=0, atol=1e-4)
    [entry] = store.entries()
    assert len(entry.tokens) == started.prompt_tokens and entry.size > 0
    assert oct(entry.path.stat().st_mode & 0o777) == "0o600"
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as second:
        started, restored = read(second, case())
        assert started.restored == started.prompt_tokens - 1 and started.evaluating == 1
        np.testing.assert_array_equal(restored, expected)
    # Another question about the same document: the document is not read again.
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as third:
        started, _ = read(third, case("And the sentence?"))
        assert started.restored > 600 and started.evaluating < 20
        events = list(third.stream(case("And the sentence?"), params=FIRST))
        assert events[-1].stats.prompt_restored == 0  # in memory now: nothing from disk


def test_a_cache_about_to_be_replaced_is_saved_first(models, store):
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        read(engine, case())
        assert not store.entries()
        read(engine, [{"role": "user", "content": "Something else entirely."}])
        assert len(store.entries()) == 1  # the case's cache, saved before it was overwritten
        started, _ = read(engine, case())
        assert started.restored > 600  # and back from disk for the case
        assert engine.estimate(case()).to_read == 1


def test_short_prompts_are_not_saved(models, store):
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        read(engine, [{"role": "user", "content": "hi"}])
        assert len(engine.cached_tokens()) < MIN_SAVED_TOKENS
        assert engine.save_state() is None
    assert not store.entries()


def _saved_state(models, store) -> None:
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        read(engine, case())


def test_a_damaged_state_is_removed_never_loaded(models, store):
    _saved_state(models, store)
    [entry] = store.entries()
    data = bytearray(entry.path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the keys and values
    entry.path.write_bytes(bytes(data))
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        started, _ = read(engine, case())
        assert started.restored == 0 and started.evaluating == started.prompt_tokens
        assert not entry.path.exists() and not entry.record.exists()
    [again] = store.entries()  # saved afresh on close, from the cache just read
    assert store.verified(again) and again.path.read_bytes() != bytes(data)


def test_unreadable_foreign_or_orphaned_records_are_removed(models, store):
    _saved_state(models, store)
    [entry] = store.entries()
    record = json.loads(entry.record.read_text())
    entry.record.write_text(json.dumps({**record, "llama_cpp": "0.0.1"}))
    assert store.entries() == [] and not entry.path.exists()  # another writer's format
    _saved_state(models, store)
    [entry] = store.entries()
    entry.record.write_text("{not json")
    assert store.entries() == [] and not entry.path.exists()
    orphan = store.directory / "leftover.kvstate"
    orphan.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    store.entries()
    assert not orphan.exists()


def test_a_state_llama_cpp_refuses_is_removed(models, store, tmp_path):
    _saved_state(models, store)
    [entry] = store.entries()
    # Same size and a matching record, but not a state file: llama.cpp refuses it.
    garbage = bytes(entry.size)
    entry.path.write_bytes(garbage)
    import hashlib

    record = json.loads(entry.record.read_text())
    record["sha256"] = hashlib.sha256(garbage).hexdigest()
    entry.record.write_text(json.dumps(record))
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        started, _ = read(engine, case())
        assert started.restored == 0
        assert not entry.path.exists()


def test_states_belong_to_their_model(models, store):
    _saved_state(models, store)
    with Engine.load(models.llama, n_ctx=2048, states=store) as other:
        started, _ = read(other, case())
        assert started.restored == 0
    keys = {e.model for e in store.entries()}
    assert len(keys) == 2  # one state per model, each under its own file's sha256


def test_the_model_key_is_the_file_checksum(models, store):
    from converters.outputs.manifest import sha256_file

    key = model_key(store, models.qwen3)
    assert key == f"{sha256_file(models.qwen3)}-f16"
    assert model_key(store, models.qwen3, "abc") == "abc-f16"  # the manifest's, trusted
    assert model_key(store, models.qwen3) == key  # remembered, not hashed again


def test_no_store_writes_nothing(models, _isolated_home):
    with Engine.load(models.qwen3, n_ctx=2048) as engine:  # incognito: states=None
        read(engine, case())
        read(engine, [{"role": "user", "content": "Something else entirely."}])
        assert engine.save_state() is None
    assert not (_isolated_home / "kv-states").exists()


def test_hybrid_model_restores_a_reading_stopped_midway(models, store):
    """Qwen3.5's recurrent state cannot be cut back: a state is restored only when the
    prompt extends it, as after a reading stopped midway and sent again after a restart;
    the logits equal those of reading the whole prompt."""
    import threading

    from app.engine.events import ReadingProgress

    with Engine.load(models.qwen35, n_ctx=2048) as fresh:
        _, expected = read(fresh, case())
    with Engine.load(models.qwen35, n_ctx=2048, states=store, read_chunk=64) as engine:
        cancel = threading.Event()
        for event in engine.stream(case(), params=FIRST, cancel=cancel):
            if isinstance(event, ReadingProgress) and event.read >= 5 * 64:
                cancel.set()
    [saved] = store.entries()  # saved on close: the 320 tokens read
    assert len(saved.tokens) == 5 * 64
    with Engine.load(models.qwen35, n_ctx=2048, states=store) as engine:
        started, restored = read(engine, case())
        assert started.restored == 5 * 64
        assert started.evaluating == started.prompt_tokens - 5 * 64
        np.testing.assert_allclose(restored, expected, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- the store alone


def test_least_recently_used_states_go_first_when_over_budget(tmp_path):
    store = KVStateStore(tmp_path, budget_bytes=3000)
    tokens = [list(range(i * 1000, i * 1000 + MIN_SAVED_TOKENS)) for i in range(4)]
    first = store.save("m", tokens[0], state_writer(1000), 1000, supersede=True)
    second = store.save("m", tokens[1], state_writer(1000), 1000, supersede=True)
    third = store.save("m", tokens[2], state_writer(1000), 1000, supersede=True)
    assert first and second and third
    later = time.time() + 10
    os.utime(first.record, (later, later))  # the first was used most recently
    store.save("m", tokens[3], state_writer(1000), 1000, supersede=True)
    names = {e.name for e in store.entries()}
    assert second.name not in names and {first.name, third.name} <= names
    assert store.total_size() <= 3000
    assert store.save("m", list(range(MIN_SAVED_TOKENS)), state_writer(5000), 5000,
                      supersede=True) is None  # alone over the budget: never written


def test_a_longer_state_supersedes_its_prefixes(tmp_path):
    store = KVStateStore(tmp_path)
    short = list(range(MIN_SAVED_TOKENS))
    store.save("m", short, state_writer(10), 10, supersede=True)
    store.save("m", [*short, 1, 2, 3], state_writer(10), 10, supersede=True)
    assert [len(e.tokens) for e in store.entries()] == [MIN_SAVED_TOKENS + 3]
    assert store.covers("m", short) and not store.covers("other", short)
    found = store.best("m", [*short, 1, 9], whole_only=False, limit=4096)
    assert found is not None and found[1] == MIN_SAVED_TOKENS + 1
    assert store.best("m", [*short, 1, 9], whole_only=True, limit=4096) is None
    assert store.best("m", [*short, 1, 2, 3, 4], whole_only=True, limit=4096) is not None
    assert store.best("m", [*short, 1, 2, 3], whole_only=False, limit=100) is None
    store.save("m", [*short, 9], state_writer(10), 10, supersede=False)  # recurrent: both kept
    assert len(store.entries()) == 2


def test_the_checksum_memo_survives_listing_states(models, store):
    key = model_key(store, models.qwen3)
    store.entries()
    assert (store.directory / "model-hashes.cache").is_file()
    assert model_key(store, models.qwen3) == key


def test_a_state_that_cannot_be_written_fails_nothing(models, store, monkeypatch):
    def full_disk(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "save", full_disk)
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        read(engine, case())
        assert engine.save_state() is None


def test_states_are_marked_with_their_conversation_and_discarded_with_it(tmp_path):
    store = KVStateStore(tmp_path)
    mine = store.save("m", list(range(MIN_SAVED_TOKENS)), state_writer(10), 10, supersede=True,
                      owner="conversation-7")
    other = store.save("m", list(range(5, 5 + MIN_SAVED_TOKENS)), state_writer(10), 10,
                       supersede=True, owner="conversation-8")
    unowned = store.save("m", list(range(9, 9 + MIN_SAVED_TOKENS)), state_writer(10), 10,
                         supersede=True)
    assert mine and other and unowned and mine.owner == "conversation-7"
    assert unowned.owner is None
    assert store.discard_owned("conversation-7") == 1
    assert {e.name for e in store.entries()} == {other.name, unowned.name}
    assert not mine.path.exists() and not mine.record.exists()
    assert store.discard_owned("conversation-7") == 0


def test_forgetting_a_deleted_conversation_drops_its_cache_and_states(models, store):
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        list(engine.stream(case(), params=FIRST, owner="conversation-1"))
        list(engine.stream([{"role": "user", "content": "Something else entirely."}],
                           params=FIRST, owner="conversation-2"))
        [saved] = store.entries()  # the case's cache, saved when it was replaced
        assert saved.owner == "conversation-1"
        list(engine.stream(case("And the sentence?"), params=FIRST, owner="conversation-3"))
        assert engine.forget("conversation-1") == 1 and not saved.path.exists()
        # The cache now holds conversation 3's reading (restored from 1's state): kept.
        assert len(engine.cached_tokens()) > MIN_SAVED_TOKENS
        assert engine.forget("conversation-3") == 0
        assert engine.cached_tokens() == []  # dropped: nothing of it is saved on close
    assert store.entries() == []


def test_a_conversation_deleted_while_its_cache_is_being_saved_leaves_no_state(models, store,
                                                                              monkeypatch):
    with Engine.load(models.qwen3, n_ctx=2048, states=store) as engine:
        list(engine.stream(case(), params=FIRST, owner="conversation-1"))
        real_save = store.save

        def save_while_deleted(*args, **kwargs):
            engine.forget("conversation-1")  # the delete lands mid-write (engine busy)
            return real_save(*args, **kwargs)

        monkeypatch.setattr(store, "save", save_while_deleted)
        list(engine.stream([{"role": "user", "content": "Something else entirely."}],
                           params=FIRST, owner="conversation-2"))
        assert store.entries() == []  # written, then removed: its conversation is gone
