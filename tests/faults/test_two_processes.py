"""Two processes at once: a second `amicus audit` (or classify) on an output file another
run is writing is refused with one line, not interleaved; two stores on one database (two
app instances) lose nothing however their writes interleave."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.store import Store
from tests.faults.killing import ANNOUNCE, ROOT, amicus_env, run, start
from tests.tools.fuzzing import LONG


# classify writes through the same locked ResultWriter; the long run checks it too.
@pytest.mark.parametrize("command", ["audit", "classify"] if LONG else ["audit"])
def test_a_second_run_on_the_same_output_is_refused(home, tmp_path, command):
    batch, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    records = [{"situation": f"S{i}.", "intention": f"I{i}.",
                "turns": [{"role": "user", "content": f"m{i}"}]} for i in range(4)]
    batch.write_text("".join(json.dumps(r) + "\n" for r in records))
    args = [command, str(batch), "-o", str(out)]
    args += ["--frame", "direct", "--no-think"] if command == "audit" else []
    env = amicus_env(home)
    first = start("result", args, {**env, "AMICUS_STEP_COUNT": "2"})  # holds after 2
    try:
        assert first.stderr is not None
        for line in first.stderr:
            if ANNOUNCE in line:
                break
        before = out.read_bytes()
        second = run(args, env)
        assert second.returncode == 2, second.stderr
        lines = [x for x in second.stderr.splitlines() if x.startswith("amicus:")]
        assert len(lines) == 1 and "another amicus run is writing to it" in lines[0]
        assert out.read_bytes() == before  # nothing interleaved, nothing truncated
    finally:
        first.kill()
        first.wait()
    resumed = run(args, env)  # the lock went with the killed process
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert sorted(json.loads(x)["line"] for x in out.read_text().splitlines()) == [1, 2, 3, 4]


_WRITER = r"""
import sys
from app.store import Store
path, tag, count, shared = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with Store.open(path) as store:
    for number in range(count):
        chat = store.create_conversation("general", title=f"{tag}-{number}")
        store.add_message(chat.id, "user", f"{tag} question {number}")
        reply = store.add_message(chat.id, "assistant", status="streaming")
        store.update_message(reply.id, content=f"{tag} answer {number}", status="complete")
        again = store.add_alternative(reply.id, status="streaming")  # regenerated
        store.update_message(again.id, content=f"{tag} again {number}", status="complete")
        store.rename_conversation(chat.id, f"{tag}-{number}-renamed")
        store.add_message(shared, "user", f"{tag} shared {number}")
        store.add_prompt("general", f"{tag} prompt {number}")
        if number % 8 == 0:  # another instance starting meanwhile
            Store.open(path).close()
"""


def test_two_stores_on_one_database_lose_nothing(tmp_path):
    """What two app instances (or the app and `amicus` beside it) do to one database:
    conversations created, replies streamed, regenerated and finalised, renames, turns
    added to one conversation both have open, prompts remembered, an instance starting
    (which recovers replies of dead processes only), all interleaved."""
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as store:
        shared = store.create_conversation("general", title="shared").id
    count = 40
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path), tag, str(count),
                                 str(shared)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
               for tag in ("a", "b")]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    with Store.open(path) as store:
        conversations = [c for c in store.list_conversations() if c.id != shared]
        titles = sorted(c.title for c in conversations)
        assert titles == sorted(f"{t}-{n}-renamed" for t in "ab" for n in range(count))
        for conversation in conversations:
            tag, number, _ = conversation.title.split("-")
            user, reply = store.messages(conversation.id)
            assert user.content == f"{tag} question {number}"
            assert (reply.content, reply.status) == (f"{tag} again {number}", "complete")
            assert [m.content for m in store.alternatives(reply.id)] == [
                f"{tag} answer {number}", f"{tag} again {number}"]
        turns = [m.content for m in store.messages(shared)]
        assert sorted(turns) == sorted(f"{t} shared {n}" for t in "ab" for n in range(count))
        for tag in "ab":  # each process's turns in its own order, none lost
            assert [t for t in turns if t.startswith(tag)] == [
                f"{tag} shared {n}" for n in range(count)]
        prompts = store.prompt_history("general")
        assert sorted(prompts) == sorted(f"{t} prompt {n}" for t in "ab" for n in range(count))
