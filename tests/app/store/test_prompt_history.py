"""Prompt history per assistant (the input's Up/Down keys): stored, bounded, never in
incognito, gone with the conversation that sent it."""

from __future__ import annotations

from app.store import Store
from app.store import store as store_module


def test_prompts_are_kept_per_assistant_oldest_first_without_repeats(store):
    for text in ("第一個問題", "second", "second", "第三\n多行"):
        store.add_prompt("civic-qa", text)
    store.add_prompt("general", "other assistant")
    store.add_prompt("general", "   ")
    assert store.prompt_history("civic-qa") == ["第一個問題", "second", "第三\n多行"]
    assert store.prompt_history("civic-qa", limit=2) == ["second", "第三\n多行"]
    assert store.prompt_history("general") == ["other assistant"]
    store.clear_prompt_history("general")
    assert store.prompt_history("general") == [] and store.prompt_history("civic-qa")


def test_the_history_is_bounded_and_survives_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_PROMPTS", 3)
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as store:
        for n in range(5):
            store.add_prompt("general", f"p{n}")
    with Store.open(path) as store:
        assert store.prompt_history("general") == ["p2", "p3", "p4"]


def test_incognito_remembers_no_prompt():
    with Store.open(incognito=True) as store:
        store.add_prompt("general", "secret")
        assert store.prompt_history("general") == []


def test_deleting_a_conversation_forgets_the_prompts_it_sent(store):
    chat = store.create_conversation("civic-qa")
    store.add_message(chat.id, "user", "當事人的身分證字號 A123456789")
    store.add_prompt("civic-qa", "當事人的身分證字號 A123456789")
    store.add_prompt("civic-qa", "unrelated")
    store.delete_conversation(chat.id)
    assert store.prompt_history("civic-qa") == ["unrelated"]
