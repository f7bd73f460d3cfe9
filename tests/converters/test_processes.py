"""converters.processes: a running process is alive; an ended one, reaped or a zombie, is
not."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from converters.processes import process_alive


def test_running_ended_and_zombie_processes():
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_alive(child.pid)
        child.kill()
        time.sleep(0.2)  # killed, not yet reaped: a zombie
        assert not process_alive(child.pid)
    finally:
        child.wait()
    assert not process_alive(child.pid)
    assert not process_alive(0)
