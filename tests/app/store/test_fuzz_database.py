"""Fuzzing the conversation database: a file with damaged pages (bytes flipped or
overwritten, a page zeroed, the file cut short), or replies whose provenance record is
damaged, is refused with one line naming it (a StoreError, exit 2), or read; every use the
app makes of it (list, open, versions of a reply, export, search, prompt history, add a
message, settings) behaves the same. Never another exception or a hang."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.store import Store
from tests.app.store.conftest import record
from tests.tools.fuzzing import dump_json, fuzz_settings, mutated_json, refused_or_read

PAGE = 4096


@pytest.fixture(scope="module")
def database(tmp_path_factory) -> Path:
    """A database a clinic could have: conversations with messages of every status, CJK
    text, parameters, thinking, settings; checkpointed into one file."""
    path = tmp_path_factory.mktemp("db") / "amicus.sqlite3"
    with Store.open(path) as store:
        for number in range(12):
            conversation = store.create_conversation(
                "sentencing" if number % 2 else "moral-audit", title=f"案件 {number}",
                parameters={"temperature": 0.2} if number % 3 == 0 else None,
                system_prompt="你是一个专业的AI刑事审判辅助系统。" if number % 4 == 0 else None)
            for turn in range(6):
                store.add_message(conversation.id, "user", f"第{turn}个问题 " * (turn * 20))
                reply = store.add_message(
                    conversation.id, "assistant", "答复 " * 200,
                    thinking="思考" * 50 if turn % 2 else None,
                    status=("complete", "cancelled", "error")[turn % 3],
                    completion_tokens=turn * 10, tokens_per_second=12.5,
                    provenance=record(temperature=0.1 * turn))
                if turn == 2:  # regenerated: two versions of the reply
                    store.add_alternative(reply.id, "另一个答复", provenance=record())
            store.add_prompt(conversation.assistant, f"第{number}个问题")
        store.set_setting("last_assistant", "sentencing")
        store.set_setting("window", {"sidebar": True, "width": 120})
    assert not path.with_name(path.name + "-wal").exists() or \
        path.with_name(path.name + "-wal").stat().st_size == 0
    return path


def _use(path: Path) -> None:
    """What the app and `amicus` do with the database."""
    with Store.open(path) as store:
        store.get_setting("last_assistant")
        store.get_setting("window")
        found = store.list_conversations()
        store.list_conversations("sentencing", search="问题")
        store.search("答复")
        store.prompt_history("sentencing")
        for conversation in found:
            store.get_conversation(conversation.id)
            for message in store.messages(conversation.id)[-2:]:
                store.alternatives(message.id)
                store.ancestors(message.id)
            store.export_markdown(conversation.id)
        if found:
            message = store.add_message(found[0].id, "user", "新的问题")
            store.update_message(message.id, content="改过的问题")
        store.create_conversation("general", title="new")


@st.composite
def damage(draw: st.DrawFn, size: int) -> list[tuple[str, int, bytes]]:
    pages = size // PAGE
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        page = draw(st.integers(0, pages - 1))
        kind = draw(st.sampled_from(["flip", "overwrite", "zero", "truncate"]))
        at = page * PAGE + draw(st.integers(0, PAGE - 1))
        payload = draw(st.binary(min_size=1, max_size=64)) if kind == "overwrite" else b""
        changes.append((kind, at if kind != "zero" else page * PAGE, payload))
    return changes


def _apply(path: Path, changes: list[tuple[str, int, bytes]]) -> None:
    data = bytearray(path.read_bytes())
    for kind, at, payload in changes:
        if at >= len(data):
            continue
        if kind == "flip":
            data[at] ^= 0xFF
        elif kind == "overwrite":
            data[at:at + len(payload)] = payload
        elif kind == "zero":
            data[at:at + PAGE] = bytes(min(PAGE, len(data) - at))
        else:
            del data[at - at % PAGE if at % PAGE and at > PAGE else at:]
    path.write_bytes(bytes(data))


@fuzz_settings(60)
@given(data=st.data())
def test_damaged_databases_are_refused_or_read(database, tmp_path, data):
    path = tmp_path / "amicus.sqlite3"
    for stale in tmp_path.glob("amicus.sqlite3*"):
        stale.unlink(missing_ok=True)  # a connection collected meanwhile removes its -wal
    shutil.copy(database, path)
    _apply(path, data.draw(damage(path.stat().st_size)))
    refused_or_read(lambda: _use(path), names=str(path))


def test_every_message_field_is_checked_when_read():
    from dataclasses import fields

    from app.store.records import _MESSAGE_KINDS, Message

    assert set(_MESSAGE_KINDS) == {field.name for field in fields(Message)}


@pytest.mark.parametrize("column", ["created_at", "parameters", "role", "content"])
def test_rows_with_values_of_the_wrong_shape_are_reported_as_damage(database, tmp_path,
                                                                    column):
    """What a damaged page can also leave: a row whose values SQLite still returns but that
    are not what Amicus wrote (an unreadable date, JSON that is not JSON, a number where
    text belongs)."""
    import sqlite3

    path = tmp_path / "amicus.sqlite3"
    shutil.copy(database, path)
    table = "conversations" if column in ("created_at", "parameters") else "messages"
    value = {"created_at": "yesterday", "parameters": "{not json", "role": 7,
             "content": b"\x00\xff"}[column]
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = 1", (value,))
    error = refused_or_read(lambda: _use(path), names=str(path))
    assert "damaged" in str(error)


def test_text_that_is_not_utf8_is_reported_as_damage(database, tmp_path):
    import sqlite3

    path = tmp_path / "amicus.sqlite3"
    shutil.copy(database, path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE messages SET content = CAST(X'F5B1FF' AS TEXT) WHERE id = 1")
    error = refused_or_read(lambda: _use(path), names=str(path))
    assert "damaged" in str(error) and "UTF-8" in str(error)


@pytest.fixture(scope="module")
def provenance_doc() -> dict:
    return record().as_dict()


@fuzz_settings(50)  # each case reads the whole database
@given(data=st.data())
def test_damaged_provenance_records_are_refused_or_read(database, tmp_path, provenance_doc,
                                                         data):
    """A reply's provenance is JSON the store reads back for exports and the details view:
    any value at any place of a real record (a list for the sampling, a string for the
    model, a huge number for the size) is read, ignored or reported as damage."""
    import sqlite3

    path = tmp_path / "amicus.sqlite3"
    for stale in tmp_path.glob("amicus.sqlite3*"):
        stale.unlink(missing_ok=True)
    shutil.copy(database, path)
    doc = data.draw(mutated_json(provenance_doc, focus=("model", "backend", "sampling")))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE messages SET provenance = ? WHERE role = 'assistant'",
                     (dump_json(doc).decode("utf-8", "surrogatepass"),))
    conn.close()
    refused_or_read(lambda: _use(path), names=str(path))
