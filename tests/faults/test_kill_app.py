"""The app killed with SIGKILL while a reply streams (in a real terminal, tmux), and the
store killed at random moments while conversations are saved: the database opens and is
consistent, the partial reply is absent or kept as cancelled, and the app starts again."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.store import Store
from tests.faults.killing import ROOT
from tests.tools.fuzzing import FUZZ_LONG_FACTOR, LONG
from tests.tools.terminal import TMUX, Terminal

STORE_KILLS = 6 * (FUZZ_LONG_FACTOR if LONG else 1)


def _consistent(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def _open_app(terminal: Terminal, home: Path) -> None:
    # exec: the pane's process is the app itself, so its pid is the one to kill
    terminal.tmux("new-session", "-d", "-s", terminal.session, "-x", "120", "-y", "40",
                  "-c", str(ROOT), "-e", f"AMICUS_HOME={home}", "-e", "TERM=xterm-256color",
                  f"exec {sys.executable} -m app.cli")
    terminal.wait_for(lambda s: "Assistants" in s and "ctx " in s, timeout=60)


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (make test installs it)")
def test_app_killed_while_a_reply_streams(demo_models, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(demo_models, home / "models")
    with Store.open(home / "amicus.sqlite3") as store:
        # Greedy: the demo model then never samples its end token (at its default
        # temperature it may stop after a few dozen tokens, before the kill lands).
        store.create_conversation("moral-audit", title="Killed",
                                  parameters={"num_predict": 4000, "temperature": 0})
    terminal = Terminal(f"amicus-kill-{os.getpid()}", "amicus")
    try:
        _open_app(terminal, home)
        terminal.keys("what now", "Enter")
        terminal.wait_for(lambda s: "generating" in s, timeout=60)
        time.sleep(0.3)  # some of the reply on screen
        os.kill(terminal.pid(), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while terminal.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        path = home / "amicus.sqlite3"
        _consistent(path)
        with Store.open(path) as store:  # opening recovers what the killed app left
            [conversation] = store.list_conversations()
            messages = store.messages(conversation.id)
        assert messages[0].role == "user" and messages[0].content == "what now"
        assert all(m.status != "streaming" for m in messages), messages
        assert len(messages) == 1 or messages[1].status == "cancelled", messages
        _open_app(terminal, home)  # and the app starts again, showing the conversation
        screen = terminal.wait_for(lambda s: "what now" in s)
        assert "Killed" in screen
        terminal.keys("C-q")
    finally:
        terminal.tmux("kill-server", check=False)


_SAVER = r"""
import sys
from app.store import Store
with Store.open(sys.argv[1]) as store:
    number = 0
    while True:
        chat = store.create_conversation("general", title=f"chat {number}")
        for turn in range(3):
            store.add_message(chat.id, "user", f"question {turn} " * 50)
            reply = store.add_message(chat.id, "assistant", status="streaming")
            store.update_message(reply.id, content=f"answer {turn} " * 200, status="complete")
        store.rename_conversation(chat.id, f"chat {number} saved")
        if number % 5 == 4:
            store.delete_conversation(chat.id)
        print(number, flush=True)
        number += 1
"""


def test_store_killed_at_random_moments_while_saving(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    rng = random.Random(None if LONG else 3)
    for _ in range(STORE_KILLS):
        saver = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert saver.stdout is not None
        saver.stdout.readline()  # it is saving
        time.sleep(rng.uniform(0.0, 0.5))
        saver.send_signal(signal.SIGKILL)
        _, err = saver.communicate()
        assert saver.returncode == -signal.SIGKILL, err
        _consistent(path)
        with Store.open(path) as store:
            for conversation in store.list_conversations():
                messages = store.messages(conversation.id)
                assert all(m.status in ("complete", "cancelled") for m in messages)
                # every reply saved is whole: its text was written in one transaction
                for reply in (m for m in messages if m.role == "assistant"):
                    assert reply.content in ("", *(f"answer {t} " * 200 for t in range(3)))
                store.export_markdown(conversation.id)
