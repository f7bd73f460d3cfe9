"""Conversations and settings in SQLite under the platformdirs data directory. No textual.

    store = Store.open()                      # or Store.open(incognito=True)
    chat = store.create_conversation("civic-qa", title="租屋押金")
    store.add_message(chat.id, "user", "押金可以不退嗎？")
    reply = store.add_message(chat.id, "assistant", status="streaming")
    store.update_message(reply.id, content=text, thinking=thought, status="complete",
                         provenance=record)          # which model, file and settings
    again = store.add_alternative(reply.id, status="streaming")   # regenerate: kept beside
    store.messages(chat.id)                   # the conversation as shown (picked versions)
    store.search("押金")                       # every assistant, with snippets

Every failure is a StoreError with a one-line message the UI can show as it is.
"""

from __future__ import annotations

from .errors import (
    CorruptDatabaseError,
    DiskFullError,
    NotFoundError,
    ReadOnlyError,
    SchemaTooNewError,
    StoreError,
)
from .export import export_filename, render_markdown
from .provenance import Backend, ModelFile, Provenance
from .records import Conversation, Message, Role, Status
from .schema import SCHEMA_VERSION
from .search import SearchHit, Snippet
from .store import DB_FILENAME, Store, default_path

__all__ = [
    "DB_FILENAME",
    "SCHEMA_VERSION",
    "Backend",
    "Conversation",
    "CorruptDatabaseError",
    "DiskFullError",
    "Message",
    "ModelFile",
    "NotFoundError",
    "Provenance",
    "ReadOnlyError",
    "Role",
    "SchemaTooNewError",
    "SearchHit",
    "Snippet",
    "Status",
    "Store",
    "StoreError",
    "default_path",
    "export_filename",
    "render_markdown",
]
