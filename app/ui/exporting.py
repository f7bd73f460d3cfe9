"""Writing a conversation's Markdown export: a CJK-safe name (the store's), never over an
existing file, never a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from app.store import Conversation, export_filename


def filename(conversation: Conversation) -> str:
    return export_filename(conversation)


def writable_folder(preferred: Path) -> Path:
    """`preferred` if it is (or can be made) a folder we may write in, else the first such
    of the documents folder and the home folder: with a read-only data folder, exports
    still go somewhere (the user may type any other path in the export dialog)."""
    import platformdirs

    for candidate in (preferred, Path(platformdirs.user_documents_dir()), Path.home()):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK | os.X_OK):
            return candidate
    return preferred


def free_path(path: Path) -> Path:
    """`path`, or `name (2).md`, `name (3).md`... whichever does not exist yet."""
    candidate, n = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
        n += 1
    return candidate


def write(path: str | Path, text: str) -> Path:
    """Write `text` to `path` (or the next free name); return where it went."""
    target = free_path(Path(os.path.expanduser(str(path))))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".export-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
