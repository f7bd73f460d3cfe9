"""Screenshots of the main screens at 80x24 and 120x40, compared with reviewed SVGs under
__snapshots__ (update with `pytest --snapshot-update`, then look at every changed image).

Determinism: conversations are seeded with fixed figures, no timestamps are rendered,
cursors do not blink in headless runs, and the one line that depends on the machine (the
llama.cpp backend) is fixed here.
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Select, TextArea

from app.store import Store
from app.ui.screens.case_form import CaseForm
from app.ui.screens.error_dialog import ErrorDialog
from app.ui.screens.frame_form import FrameForm
from app.ui.screens.model_manager import ModelManager
from app.ui.screens.options_editor import OptionsEditor

from .conftest import Rig, wait_until

SMALL, LARGE = (80, 24), (120, 40)
REPLY = """\
Withholding the whole deposit is **not justified** here:

1. The damage claimed is ordinary wear and tear.
2. The landlord gave no itemised list.

```python
refund = deposit - documented_repairs
```
"""
THINKING = "The tenant asks about the deposit. Wear and tear is not damage."


def seed(store: Store) -> None:
    old = store.create_conversation("moral-audit", title="An older case")
    store.add_message(old.id, "user", "Is it fine to keep a found wallet?")
    cjk = store.create_conversation("moral-audit", title="房東扣押金：合理嗎？這是一個很長的標題")
    store.add_message(cjk.id, "user", "房東以「清潔費」為由扣了全部押金，合理嗎？")
    main = store.create_conversation("moral-audit", title="Deposit withheld by the landlord")
    store.add_message(main.id, "user", "My landlord kept my whole deposit for wear and tear. "
                      "Is that fair?")
    store.add_message(main.id, "assistant", REPLY.strip(), thinking=THINKING,
                      generation_ms=3400.0, prompt_tokens=412, completion_tokens=96,
                      tokens_per_second=28.2)
    store.add_message(main.id, "user", "a forbidden plan", status="blocked",
                      blocked_probability=0.93)


def seed_civic(store: Store) -> None:
    chat = store.create_conversation("civic-qa", title="租屋押金可以不退嗎", thinking=False)
    store.add_message(chat.id, "user", "租屋押金，房東可以不退嗎？")
    store.add_message(chat.id, "assistant",
                      "依《民法》規定，租賃關係消滅時，房東應返還押金；但可扣除承租人未付之租金"
                      "或損害賠償。建議：\n\n- 保留**點交紀錄**與照片\n- 以存證信函催告返還",
                      generation_ms=2100.0, prompt_tokens=180, completion_tokens=64,
                      tokens_per_second=30.5)


@pytest.fixture
def seeded(rig_factory) -> Rig:
    store = Store.open(incognito=True)
    seed(store)
    # F4's memory estimate: the same on every machine (free memory and the CPU's REPACK
    # otherwise change the line and whether the size fits).
    return rig_factory(store=store, available_memory=8 * 1024**3)


@pytest.fixture(autouse=True)
def fixed_backend(monkeypatch):
    monkeypatch.setattr("app.engine.memory._repacks", lambda: False)
    monkeypatch.setattr("app.ui.screens.model_manager.backend_line",
                        lambda services: "No model loaded yet (models load when first used)"
                                         " · backend: CPU only")
    # The demo models' KL figures depend on the CPU's kernels in their last digits.
    monkeypatch.setattr("app.ui.screens.model_manager.quality_text",
                        lambda model: f"{model.name} · importance matrix: collected · KL vs "
                                      "F16, mean / p99: 0.0123 / 0.0456 · top-1 agreement: "
                                      "78.9%")


async def ready(pilot) -> None:
    """The main screen has mounted and shows its assistant."""
    await wait_until(pilot, lambda: pilot.app.screen.id == "main"
                     and pilot.app.screen.entry is not None)
    await pilot.pause()


async def until_screen(pilot, kind: type) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, kind))
    await pilot.pause()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_main_screen(snap_compare, seeded, size):
    assert snap_compare(seeded.app, terminal_size=size)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_main_screen_cjk_conversation(snap_compare, rig_factory, size):
    store = Store.open(incognito=True)
    seed_civic(store)
    store.set_setting("ui.assistant", "civic-qa")
    rig = rig_factory(store=store)
    assert snap_compare(rig.app, terminal_size=size)


def test_main_screen_light_theme_thinking_expanded(snap_compare, seeded):
    assert snap_compare(seeded.app, terminal_size=LARGE, press=["f12", "ctrl+o"])


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_frame_form(snap_compare, seeded, size):
    async def fill(pilot) -> None:
        await ready(pilot)
        await pilot.press("f5")
        await until_screen(pilot, FrameForm)
        form = pilot.app.screen
        form.query_one("#frame", Select).value = "action"
        form.query_one("#situation", TextArea).load_text("A tenant's deposit is withheld.")
        form.query_one("#intention", Input).value = "Get the deposit back."
        form.query_one("#action", Input).value = "Stop paying the last month's rent."
        await pilot.pause()

    assert snap_compare(seeded.app, terminal_size=size, run_before=fill)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_case_form(snap_compare, rig_factory, size):
    store = Store.open(incognito=True)
    store.set_setting("ui.assistant", "sentencing")
    rig = rig_factory(store=store)

    async def fill(pilot) -> None:
        await ready(pilot)
        await pilot.press("f5")
        await until_screen(pilot, CaseForm)
        form = pilot.app.screen
        form.query_one("#charges", Input).value = "盗窃罪"
        form.query_one("#facts", TextArea).load_text(
            "被告人于2023年3月在某超市窃取商品，价值人民币1200元，案发后退赔。")
        form.query_one("#plea", Input).value = "认罪认罚"
        await pilot.pause()

    assert snap_compare(rig.app, terminal_size=size, run_before=fill)


def test_options_editor(snap_compare, seeded):
    async def open_editor(pilot) -> None:
        await ready(pilot)
        await pilot.press("f4")
        await until_screen(pilot, OptionsEditor)
        pilot.app.screen.query_one("#param-temperature", Input).value = "0.7"
        line = pilot.app.screen.query_one("#saved-reading")
        await wait_until(pilot, lambda: "looking" not in str(line.render()))

    assert snap_compare(seeded.app, terminal_size=SMALL, run_before=open_editor)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "120x40"])
def test_model_manager(snap_compare, seeded, size):
    async def open_models(pilot) -> None:
        await ready(pilot)
        await pilot.press("f3")
        await until_screen(pilot, ModelManager)
        backend = pilot.app.screen.query_one("#backend")
        await wait_until(pilot, lambda: "backend" in str(backend.render()))

    assert snap_compare(seeded.app, terminal_size=size, run_before=open_models)


def test_no_models_installed(snap_compare, rig_factory, tmp_path):
    rig = rig_factory(models=tmp_path / "none")
    assert snap_compare(rig.app, terminal_size=SMALL)


def test_error_dialog(snap_compare, seeded):
    async def fail(pilot) -> None:
        await ready(pilot)
        pilot.app.push_screen(ErrorDialog(
            "The model could not be loaded",
            "moral-audit.Q4_K_M.gguf: not a GGUF file (bad magic); run `amicus models "
            "verify moral-audit`, or reinstall it."))
        await until_screen(pilot, ErrorDialog)

    assert snap_compare(seeded.app, terminal_size=SMALL, run_before=fail)


def test_reply_details(snap_compare, rig_factory):
    """A reply with its provenance shown (alt+d), in an 80x24 terminal."""
    from tests.app.store.conftest import record

    store = Store.open(incognito=True)
    chat = store.create_conversation("sentencing", title="盗窃罪 · 张某", thinking=False)
    store.add_message(chat.id, "user", "【罪名】盗窃罪\n【案件事实】被告人张某窃取商品。")
    store.add_message(chat.id, "assistant", "建议判处有期徒刑六个月。", generation_ms=1800.0,
                      prompt_tokens=120, completion_tokens=40, tokens_per_second=22.2,
                      provenance=record(used_anyway=True, verification="FAILED"))
    store.set_setting("ui.assistant", "sentencing")
    rig = rig_factory(store=store)
    assert snap_compare(rig.app, terminal_size=SMALL, press=["alt+d"])


def test_read_only_banner(snap_compare, rig_factory, folder):
    """A past conversation in a data folder that cannot be written, in 80x24."""
    from tests.app.store.conftest import read_only

    path = folder / "amicus.sqlite3"
    with Store.open(path) as writable:
        seed(writable)
    with read_only(folder):
        store = Store.open(path)
    # The reason names the folder, which differs on every run: a fixed one is shown.
    store.read_only = ("/home/clinic/.local/share/amicus/amicus.sqlite3 can be read but "
                       "not written (Permission denied)")
    assert snap_compare(rig_factory(store=store).app, terminal_size=SMALL)
