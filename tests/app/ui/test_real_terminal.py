"""The app in a real terminal: `amicus` started in tmux (120x40), driven with send-keys, its
screen read with capture-pane. This is what pilot tests cannot show: the terminal's own
key encoding (ctrl+j is a line feed byte, Enter a carriage return, Up an escape sequence),
a real driver, a real first paint, and a clean exit. `make test` installs Debian's tmux
when it is missing."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from app.store import Store
from tests.tools.terminal import TMUX, Terminal

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (make test "
                                                     "installs it)")


def prompt_box(screen: str) -> str:
    """The message box: the rows between its top border and the status line (the
    context's figures, or the draft's size while one is typed)."""
    rows = screen.rstrip("\n").splitlines()
    status = max(i for i, row in enumerate(rows) if re.search(r"ctx |message ~?[\d,]+ of ",
                                                              row))
    top = max(i for i, row in enumerate(rows[:status]) if "─" * 20 in row)
    return "\n".join(rows[top + 1:status])


@pytest.fixture
def terminal(demo_models, _isolated_home, tmp_path):
    shutil.copytree(demo_models, _isolated_home / "models")
    store = Store.open()  # the conversation the app opens: replies kept short
    store.create_conversation("moral-audit", title="In tmux", parameters={"num_predict": 16})
    store.close()
    term = Terminal(f"amicus-test-{os.getpid()}", "amicus")
    command = f"{sys.executable} -m app.cli"
    term.tmux("new-session", "-d", "-s", "amicus", "-x", "120", "-y", "40", "-c", str(ROOT),
              "-e", f"AMICUS_HOME={_isolated_home}", "-e", "TERM=xterm-256color", command)
    yield term
    term.tmux("kill-server", check=False)


def test_amicus_in_a_real_terminal(terminal, _isolated_home):
    started = time.monotonic()
    first = terminal.wait_for(lambda s: "Assistants" in s and "ctx 0/4096" in s)
    print(f"first paint in tmux after {time.monotonic() - started:.2f} s")
    assert "moral-audit" in first and "DEMO MODEL: meaningless text" in first
    assert "In tmux" in first  # the conversation list and the chat's title
    # All in one write, as fast as a paste: the keys must be handled in the order sent.
    terminal.keys("line one", "C-j", "line two", "Enter")
    done = terminal.wait_for(lambda s: " tokens · " in s and " · ctx " in s, timeout=60)
    assert "You" in done and "moral-audit  copy" in done
    assert "line one" in done and "line two" in done
    # The prompt history: Up recalls only from the first line, Down gives the draft back
    # only from the last; elsewhere they move the cursor through the lines being typed.
    terminal.keys("aa-one", "C-j", "bb-two")
    terminal.wait_for(lambda s: "bb-two" in prompt_box(s))
    terminal.keys("Up")  # from the second line: to the first, nothing recalled
    time.sleep(0.5)
    assert "aa-one" in prompt_box(terminal.screen()) and "bb-two" in prompt_box(
        terminal.screen())
    terminal.keys("Up")  # from the first line: the last prompt sent
    recalled = terminal.wait_for(lambda s: "line one" in prompt_box(s))
    assert "aa-one" not in prompt_box(recalled) and "line two" in prompt_box(recalled)
    terminal.keys("Down")  # to its second line
    time.sleep(0.5)
    assert "line one" in prompt_box(terminal.screen())
    terminal.keys("Down")  # from the last line: what was being typed
    back = terminal.wait_for(lambda s: "aa-one" in prompt_box(s))
    assert "bb-two" in prompt_box(back) and "line one" not in prompt_box(back)
    terminal.keys("C-q")
    deadline = time.monotonic() + 10
    while terminal.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not terminal.alive(), "the app did not exit on ctrl+q"
    store = Store.open()
    [conversation] = store.list_conversations("moral-audit")
    user, reply = store.messages(conversation.id)
    assert user.content == "line one\nline two"
    assert store.prompt_history("moral-audit") == ["line one\nline two"]
    assert reply.status == "complete" and 0 < (reply.completion_tokens or 0) <= 16
