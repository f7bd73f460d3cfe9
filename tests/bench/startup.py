"""Benchmark: the terminal app's time to first paint, with models installed.

Installs the five demo models and a store of 40 conversations (20 messages each; the
question of each also in the prompt history that the message box loads at startup; more
with --conversations) in a temporary AMICUS_HOME, then measures, each run in a fresh process:
  1. headless: process start -> Textual's Ready event (the first frame is composed), via
     the same build_app() `amicus` uses;
  2. in a real terminal (when tmux is installed): `amicus` started in a 120x40 tmux pane
     -> its screen shows the assistants and the status line (polled every 10 ms).
No model is loaded at startup (the GGUFs are mapped on the first message), so neither
depends on model size. Target: under 1 s on the 2-core build machine.

Run: .venv/bin/python tests/bench/startup.py [--runs N] [--conversations N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """
from app.ui.app import AmicusApp, build_app
from app.ui.config import load_config

class Bench(AmicusApp):
    def on_ready(self) -> None:  # Textual's Ready: the DOM is mounted, the first frame drawn
        print("ready", flush=True)
        self.exit()

app = build_app(load_config())  # what `amicus` runs, then the same app with the hook
Bench(app.config, app.services).run(headless=True, size=(120, 40))
"""


def prepare(home: Path, conversations: int) -> None:
    env = {**os.environ, "AMICUS_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "app.cli", "demo"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    seed = ("from app.store import Store\ns = Store.open()\n"
            f"for i in range({conversations}):\n"
            "    c = s.create_conversation('moral-audit', title=f'Case {i} 押金')\n"
            "    s.add_prompt('moral-audit', f'question {i} ' * 30)\n"
            "    for j in range(10):\n"
            "        s.add_message(c.id, 'user', 'question ' * 30)\n"
            "        s.add_message(c.id, 'assistant', 'answer **bold** ' * 80,\n"
            "                      completion_tokens=200, tokens_per_second=20.0)\n")
    subprocess.run([sys.executable, "-c", seed], cwd=ROOT, env=env, check=True)


def headless_once(home: Path) -> float:
    env = {**os.environ, "AMICUS_HOME": str(home)}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline()
    elapsed = time.perf_counter() - started
    child.wait(timeout=30)
    if line.strip() != "ready":
        raise SystemExit("the app did not start")
    return elapsed


def tmux_once(home: Path, tmux: str, run: int, latest: str) -> float:
    socket = f"amicus-bench-{os.getpid()}-{run}"  # a fresh server each run
    amicus = Path(sys.executable).with_name("amicus")
    command = str(amicus) if amicus.exists() else f"{sys.executable} -m app.cli"
    base = [tmux, "-L", socket]
    started = time.perf_counter()
    subprocess.run([*base, "new-session", "-d", "-s", "bench", "-x", "120", "-y", "40", "-c",
                    str(ROOT), "-e", f"AMICUS_HOME={home}", "-e", "TERM=xterm-256color",
                    command], check=True)
    try:
        while time.perf_counter() - started < 30:
            screen = subprocess.run([*base, "capture-pane", "-p", "-t", "bench"],
                                    capture_output=True, text=True).stdout
            if "Assistants" in screen and "ctx " in screen and latest in screen:
                return time.perf_counter() - started
            time.sleep(0.01)
        raise SystemExit("the app never painted in tmux")
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)


def report(name: str, times: list[float]) -> None:
    print(f"{name:<34} median {statistics.median(times):.3f} s  "
          f"min {min(times):.3f} s  max {max(times):.3f} s  ({len(times)} runs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--conversations", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="amicus-startup-") as tmp:
        home = Path(tmp)
        prepare(home, args.conversations)
        print(f"{os.cpu_count()} CPUs · 5 demo models and {args.conversations} conversations "
              "installed")
        headless_once(home)  # warm the OS file cache, as a second start would be
        report("headless: start -> first frame", [headless_once(home) for _ in
                                                  range(args.runs)])
        tmux = shutil.which("tmux")
        latest = f"Case {args.conversations - 1}"  # listed first, once the list is drawn
        if tmux:
            report("tmux: start -> screen painted", [tmux_once(home, tmux, run, latest)
                                                     for run in range(args.runs)])
        else:
            print("tmux not installed: real-terminal measurement skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
