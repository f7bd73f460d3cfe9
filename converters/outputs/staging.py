"""Atomic outputs: files appear under their final names only when everything succeeded.

Work happens in a hidden staging directory inside the output directory (same filesystem,
so the final moves are atomic renames). A crash, a full disk or Ctrl-C leaves no file
under a final name; staging directories left by a killed process are swept on the next run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from types import TracebackType

from converters.processes import process_alive

_PREFIX = ".amicus-staging-"


class Staging:
    """`with Staging(out_dir) as stage:` write to `stage.path(name)`, then `stage.commit()`."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.dir = out_dir / f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._committed: list[Path] = []

    def __enter__(self) -> Staging:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        sweep_stale_staging(self.out_dir)
        self.dir.mkdir()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name: str) -> Path:
        return self.dir / name

    def commit(self, names: list[str]) -> list[Path]:
        """Move staged files to their final names, in order (put the manifest last: its
        presence says the set is complete). The manifest of an earlier set goes first, so
        an interruption between the moves leaves no manifest vouching for a mixed set."""
        earlier_manifest = self.out_dir / names[-1]
        if earlier_manifest.exists():
            earlier_manifest.unlink()
            _fsync_dir(self.out_dir)
        finals = []
        for name in names:
            final = self.out_dir / name
            os.replace(self.dir / name, final)
            finals.append(final)
        _fsync_dir(self.out_dir)
        return finals


def sweep_stale_staging(out_dir: Path) -> None:
    """Remove staging directories whose process is gone (killed before it could clean)."""
    for stale in out_dir.glob(f"{_PREFIX}*"):
        pid = stale.name.removeprefix(_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
