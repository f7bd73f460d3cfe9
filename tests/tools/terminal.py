"""Driving `amicus` in a real terminal: tmux (120x40), keys sent with send-keys, the screen
read with capture-pane. `make test` installs Debian's tmux when it is missing."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable

TMUX = shutil.which("tmux")


class Terminal:
    def __init__(self, socket: str, session: str) -> None:
        self.socket, self.session = socket, session

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([TMUX or "tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=check)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session, check=False).stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", self.session, *(["-l"] if literal else []), *keys)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.05)
        raise AssertionError(f"the screen never matched; it shows:\n{self.screen()}")

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.session, check=False).returncode == 0

    def pid(self) -> int:
        """The process running in the pane (the app: it is started as the pane's command)."""
        return int(self.tmux("display-message", "-p", "-t", self.session,
                             "#{pane_pid}").stdout.strip())
