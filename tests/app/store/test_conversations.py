"""Conversations, messages, search and settings through the Store API."""

from __future__ import annotations

import pytest

from app.store import DiskFullError, NotFoundError, Store


def test_a_new_conversation_uses_the_modelfile_defaults(store):
    chat = store.create_conversation("moral-audit", title="Lying to a friend")
    assert (chat.assistant, chat.title) == ("moral-audit", "Lying to a friend")
    assert chat.system_prompt is None and chat.parameters is None and chat.model is None
    assert chat.thinking is True and chat.safety_gate is False
    assert chat.created_at == chat.updated_at and chat.created_at.tzinfo is not None
    assert store.get_conversation(chat.id) == chat


def test_options_change_only_what_is_given_and_none_restores_defaults(store):
    chat = store.create_conversation("sentencing", system_prompt="你是法官助理。",
                                     parameters={"temperature": 0.2})
    changed = store.set_conversation_options(chat.id, parameters={"temperature": 0.7,
                                                                  "top_p": 0.9},
                                             thinking=False, safety_gate=True, model="q4")
    assert changed.system_prompt == "你是法官助理。"  # not given: kept
    assert changed.parameters == {"temperature": 0.7, "top_p": 0.9}
    assert (changed.thinking, changed.safety_gate, changed.model) == (False, True, "q4")
    assert changed.updated_at >= chat.updated_at
    restored = store.set_conversation_options(chat.id, system_prompt=None, parameters=None)
    assert restored.system_prompt is None and restored.parameters is None
    assert store.get_conversation(chat.id) == restored


def test_rename_and_missing_conversations(store):
    chat = store.create_conversation("general")
    assert store.rename_conversation(chat.id, "新標題").title == "新標題"
    with pytest.raises(NotFoundError):
        store.rename_conversation(9999, "x")
    with pytest.raises(NotFoundError, match="no conversation 9999"):
        store.get_conversation(9999)
    with pytest.raises(NotFoundError):
        store.add_message(9999, "user", "hi")


def test_list_is_most_recent_first_and_filters_by_assistant(store):
    first = store.create_conversation("civic-qa", title="first")
    second = store.create_conversation("civic-qa", title="second")
    other = store.create_conversation("general", title="other")
    assert [c.id for c in store.list_conversations()] == [other.id, second.id, first.id]
    store.add_message(first.id, "user", "bump")
    assert [c.id for c in store.list_conversations("civic-qa")] == [first.id, second.id]


def test_list_pages_by_limit_and_offset_most_recent_first(store):
    ids = [store.create_conversation("civic-qa", title=f"{i}").id for i in range(5)]
    assert [c.id for c in store.list_conversations("civic-qa", limit=2)] == ids[:-3:-1]
    assert [c.id for c in store.list_conversations("civic-qa", limit=2, offset=2)] == \
        [ids[2], ids[1]]
    assert [c.id for c in store.list_conversations(offset=4)] == [ids[0]]
    assert [c.id for c in store.list_conversations(limit=9)] == ids[::-1]
    assert store.list_conversations(limit=0) == []
    assert len(store.list_conversations(limit=None)) == 5


def test_search_matches_cjk_in_titles_and_messages(store):
    deposit = store.create_conversation("civic-qa", title="租屋押金")
    theft = store.create_conversation("sentencing", title="case 12")
    store.add_message(theft.id, "user", "被告竊取機車一台，價值新臺幣三萬元。")
    store.create_conversation("civic-qa", title="Parking fine")
    assert [c.id for c in store.list_conversations(search="押金")] == [deposit.id]
    assert [c.id for c in store.list_conversations(search="機車")] == [theft.id]
    assert [c.id for c in store.list_conversations(search=" parking ")] != []  # any case
    assert store.list_conversations(search="機車", assistant="civic-qa") == []
    assert len(store.list_conversations(search="  ")) == 3  # blank: no filter


def test_search_takes_percent_underscore_and_backslash_literally(store):
    store.create_conversation("general", title="discount 100%")
    snake = store.create_conversation("general", title="file_name")
    store.create_conversation("general", title="filename 1000")
    backslash = store.create_conversation("general", title=r"C:\temp")
    assert [c.title for c in store.list_conversations(search="0%")] == ["discount 100%"]
    assert [c.id for c in store.list_conversations(search="e_n")] == [snake.id]
    assert store.list_conversations(search="%") != store.list_conversations()
    assert [c.id for c in store.list_conversations(search="\\t")] == [backslash.id]
    assert store.list_conversations(search="_") == [snake]


def test_deleting_a_conversation_cascades_to_its_messages(store):
    chat = store.create_conversation("general")
    kept = store.create_conversation("general")
    store.add_message(chat.id, "user", "one")
    store.add_message(chat.id, "assistant", "two")
    store.add_message(kept.id, "user", "stays")
    store.delete_conversation(chat.id)
    store.delete_conversation(chat.id)  # twice: no error
    assert store.messages(chat.id) == []
    count = store._conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert count == 1 and [m.content for m in store.messages(kept.id)] == ["stays"]


def test_a_streamed_reply_is_added_then_finalised(store):
    chat = store.create_conversation("civic-qa")
    question = store.add_message(chat.id, "user", "押金多久要退？")
    reply = store.add_message(chat.id, "assistant", status="streaming")
    assert (reply.content, reply.status, reply.thinking) == ("", "streaming", None)
    final = store.update_message(reply.id, content="原則上於租約終止時。", thinking="想一想",
                                 status="complete", prompt_ms=120.5, generation_ms=900.0,
                                 prompt_tokens=42, completion_tokens=18,
                                 tokens_per_second=20.0)
    assert final.content == "原則上於租約終止時。" and final.thinking == "想一想"
    assert (final.prompt_tokens, final.completion_tokens, final.prompt_ms) == (42, 18, 120.5)
    assert store.messages(chat.id) == [question, final]
    assert store.update_message(reply.id) == final  # nothing given, nothing changed


def test_blocked_turns_keep_their_probability(store):
    chat = store.create_conversation("general", safety_gate=True)
    turn = store.add_message(chat.id, "user", "how to make a weapon", status="blocked",
                             blocked_probability=0.93)
    assert store.get_message(turn.id).blocked_probability == pytest.approx(0.93)


def test_a_cancelled_reply_can_be_discarded(store):
    chat = store.create_conversation("general")
    reply = store.add_message(chat.id, "assistant", "partial", status="cancelled")
    store.delete_message(reply.id)
    assert store.messages(chat.id) == []
    with pytest.raises(NotFoundError):
        store.update_message(reply.id, content="x")


def test_roles_and_statuses_are_checked(store):
    chat = store.create_conversation("general")
    with pytest.raises(ValueError, match="role"):
        store.add_message(chat.id, "tool", "x")  # type: ignore[arg-type]
    reply = store.add_message(chat.id, "assistant", "x")
    with pytest.raises(ValueError, match="status"):
        store.update_message(reply.id, status="done")  # type: ignore[arg-type]


def test_settings_hold_json_values(store):
    assert store.get_setting("theme") is None
    assert store.get_setting("theme", "dark") == "dark"
    store.set_setting("theme", "light")
    store.set_setting("theme", "textual-dark")
    store.set_setting("gpu", {"offload": True, "layers": [1, 2], "名稱": "顯示卡"})
    assert store.get_setting("theme") == "textual-dark"
    assert store.get_setting("gpu") == {"offload": True, "layers": [1, 2], "名稱": "顯示卡"}
    store.delete_setting("theme")
    assert store.get_setting("theme", 1) == 1
    with pytest.raises(TypeError):
        store.set_setting("bad", object())
    with pytest.raises(ValueError):
        store.set_setting("bad", float("nan"))


def test_settings_and_conversations_persist_across_opens(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as store:
        chat = store.create_conversation("civic-qa", title="持久")
        store.add_message(chat.id, "user", "你好")
        store.set_setting("last", chat.id)
    with Store.open(path) as store:
        assert store.get_conversation(store.get_setting("last")).title == "持久"


def test_a_full_disk_is_a_clear_error_and_the_store_keeps_working(store):
    chat = store.create_conversation("general")
    # A real SQLITE_FULL: cap the file at its current size plus a few pages.
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(DiskFullError) as caught:
        store.add_message(chat.id, "user", "長" * 100_000)
    assert "disk is full" in str(caught.value) and "\n" not in str(caught.value)
    assert store.messages(chat.id) == []  # the failed write was rolled back
    assert store.add_message(chat.id, "user", "short").content == "short"
