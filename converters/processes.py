"""Whether a process that left work behind (a staging folder, a reply being streamed) is
still running, so that its leftovers are cleaned only once it is gone."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie (killed, not yet reaped by its parent: common in
    containers whose first process reaps nothing) counts as gone."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:  # Windows: no such process
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS, Windows), or it ended meanwhile
        return True
    return stat[stat.rfind(")") + 2:][:1] != "Z"
