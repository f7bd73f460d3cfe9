"""Provenance records: stored with assistant messages, read back whole, tolerant of other
versions' records, and naming the conversation's model."""

from __future__ import annotations

import json

from app.store import Backend, Provenance
from tests.app.store.conftest import record


def test_a_reply_keeps_its_provenance_and_names_the_conversations_model(store):
    chat = store.create_conversation("sentencing")
    assert chat.model is None
    store.add_message(chat.id, "user", "盗窃罪如何量刑？")
    reply = store.add_message(chat.id, "assistant", status="streaming")
    assert reply.provenance is None
    finished = store.update_message(reply.id, content="……", status="complete",
                                    provenance=record())
    assert finished.provenance == record()
    assert store.messages(chat.id)[-1].provenance == record()
    assert store.get_conversation(chat.id).model == "sentencing.Q4_K_M.gguf"
    other = store.add_message(chat.id, "assistant", "again",
                              provenance=record(file="sentencing.Q8_0.gguf"))
    assert store.get_message(other.id).provenance.model.file == "sentencing.Q8_0.gguf"
    assert store.get_conversation(chat.id).model == "sentencing.Q8_0.gguf"


def test_a_server_reply_is_named_by_server_model_and_url(store):
    chat = store.create_conversation("moral-audit")
    served = Provenance(assistant="moral-audit", model=record().model,
                        backend=Backend("endpoint", url="http://127.0.0.1:11434/v1",
                                        server_model="moral-audit"), amicus_version="0.1.0")
    store.add_message(chat.id, "assistant", "ok", provenance=served)
    assert store.get_conversation(chat.id).model == "moral-audit @ http://127.0.0.1:11434/v1"
    assert ("Backend", "server http://127.0.0.1:11434/v1, model moral-audit") in \
        served.describe()


def test_records_of_other_versions_and_damaged_ones_still_read(store):
    newer = record().as_dict()
    newer["added_later"] = {"x": 1}
    newer["model"]["also_new"] = True
    del newer["num_ctx"]
    assert Provenance.from_dict(newer) == Provenance(**{**record().__dict__, "num_ctx": None})
    chat = store.create_conversation("general")
    message = store.add_message(chat.id, "assistant", "hi")
    store._conn.execute("UPDATE messages SET provenance = '{not json' WHERE id = ?",
                        (message.id,))
    assert store.get_message(message.id).provenance is None
    store._conn.execute("UPDATE messages SET provenance = ? WHERE id = ?",
                        (json.dumps(newer), message.id))
    assert store.get_message(message.id).provenance.model.sha256 == "ab" * 32


def test_describe_names_every_fact_in_a_fixed_order():
    lines = dict(record(demo=True, used_anyway=True, verification="FAILED").describe())
    assert list(lines) == ["Assistant", "Model", "SHA-256", "Verification", "Backend",
                           "Context", "Sampling", "System prompt", "Amicus"]
    assert lines["Model"] == ("sentencing · sentencing.Q4_K_M.gguf · Q4_K_M · 2,497,280,256 bytes"
                              " · DEMO (random weights: meaningless text)")
    assert lines["Verification"] == "FAILED: used anyway"
    assert lines["Backend"] == "embedded llama.cpp · CPU · adaptive threads"
    assert lines["Sampling"] == 'stop ["<|im_end|>"] · temperature 0.2 · top_p 0.9'
    assert lines["Context"] == "4096 tokens" and lines["Amicus"] == "0.1.0"
    fixed = Backend("embedded", threads=4, gpu_layers=36, total_layers=36)
    assert fixed.describe() == "embedded llama.cpp · GPU 36/36 layers · 4 threads"
