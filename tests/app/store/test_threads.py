"""Thread workers write while others read: nothing is lost, nothing interleaves."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from app.store import Store

THREADS, WRITES = 8, 25


def _write_many(store: Store, conversation_id: int, worker: int) -> list[int]:
    ids = []
    for n in range(WRITES):
        message = store.add_message(conversation_id, "assistant", f"{worker}:{n}",
                                    status="streaming")
        ids.append(store.update_message(message.id, content=f"{worker}:{n} 完",
                                        status="complete").id)
        store.list_conversations(search="完")  # reads interleaved with the writes
    return ids


def _run(stores: list[Store], conversation_id: int) -> list[int]:
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_write_many, stores[n % len(stores)], conversation_id, n)
                   for n in range(THREADS)]
        return [i for future in futures for i in future.result()]


def test_concurrent_writes_from_threads_share_one_store(store):
    chat = store.create_conversation("general")
    ids = _run([store], chat.id)
    messages = store.messages(chat.id)
    assert len(set(ids)) == len(messages) == THREADS * WRITES
    assert all(m.status == "complete" and m.content.endswith("完") for m in messages)


def test_concurrent_writes_from_two_stores_on_one_file(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as ui, Store.open(path) as cli:
        chat = ui.create_conversation("general")
        ids = _run([ui, cli], chat.id)
        assert len(set(ids)) == len(cli.messages(chat.id)) == THREADS * WRITES
