"""Running `amicus` in a child process and killing it with SIGKILL: at a named step (see
phase_hooks.py) or after a random delay. Nothing in the child gets to clean up, as after a
power cut or the OOM killer."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).with_name("phase_hooks.py")
ANNOUNCE = "AMICUS-STEP"


def amicus_env(home: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "AMICUS_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT), **extra}
    env.pop("AMICUS_DEBUG", None)
    return env


def start(step: str, args: list[str], env: dict[str, str],
          stderr: int = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(HOOKS), step, "--", *args], cwd=ROOT,
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=stderr, text=True, errors="replace")


def _lines(stream) -> queue.Queue[str | None]:
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def kill_at(step: str, args: list[str], env: dict[str, str], timeout: float = 120.0) -> str:
    """Run until the child announces `step`, then SIGKILL it. Returns what it printed."""
    proc = start(step, args, env)
    lines, seen = _lines(proc.stderr), []
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"amicus ended (status {proc.wait()}) before step "
                                     f"{step}:\n{''.join(seen)[-3000:]}")
            seen.append(line)
            if f"{ANNOUNCE} {step}" in line:  # after a progress bar's \r, perhaps
                proc.send_signal(signal.SIGKILL)
                break
    except queue.Empty:
        raise AssertionError(f"step {step} not reached in {timeout} s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return "".join(seen)


def kill_after(seconds: float, args: list[str], env: dict[str, str]) -> int:
    """SIGKILL the child after `seconds` (if it is still running). Returns its status."""
    proc = start("none", args, env, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.returncode


def run(args: list[str], env: dict[str, str], timeout: float = 300.0
        ) -> subprocess.CompletedProcess[str]:
    """Run to the end, unpatched."""
    return subprocess.run([sys.executable, str(HOOKS), "none", "--", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
