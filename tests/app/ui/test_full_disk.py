"""The app on a really full disk (a size-limited tmpfs, tests/tools/small_disk.py): saving a
turn and exporting a conversation fail with a dialog saying the disk is full, nothing is
half-written, and the app carries on; with room again, both work."""

from __future__ import annotations

import pytest

from app.store import Store
from app.ui.config import UIConfig
from tests.tools.small_disk import fill, small_disk

from .conftest import settle, wait_until
from .test_chat import type_and_send
from .test_gate_and_errors import close_dialog, dialog

pytestmark = pytest.mark.anyio


async def test_a_full_disk_under_the_store_and_the_exports(rig_factory, tmp_path):
    with small_disk(tmp_path / "disk", 2048) as disk:
        store = Store.open(disk / "amicus.sqlite3")
        exports = disk / "exports"
        rig = rig_factory(store=store, config=UIConfig(export_dir=exports))
        async with rig.app.run_test(size=(120, 40)) as pilot:
            await type_and_send(pilot, "saved while there is room")
            await settle(pilot, rig.app)
            filler = fill(disk, leave=0)
            await type_and_send(pilot, "x " * 8_000)  # a long turn: no room for it
            shown = await dialog(pilot)
            assert shown.title_text == "The disk is full"
            await close_dialog(pilot)
            await settle(pilot, rig.app)
            screen = rig.app.screen
            conversation = screen.conversation
            screen.export_to(conversation, str(exports / "chat.md"))
            shown = await dialog(pilot)
            assert shown.title_text == "The disk is full"
            await close_dialog(pilot)
            assert not exports.exists() or list(exports.iterdir()) == []
            filler.unlink()
            await type_and_send(pilot, "room again")
            await settle(pilot, rig.app)
            contents = [m.content for m in rig.store.messages(conversation.id)]
            assert contents[0] == "saved while there is room" and "room again" in contents
            screen.export_to(conversation, str(exports / "chat.md"))
            await wait_until(pilot, lambda: (exports / "chat.md").exists())
        store.close()
