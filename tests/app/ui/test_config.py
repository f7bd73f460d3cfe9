"""The config file (strictly validated), the keymap, the command line over both, and
`amicus` with no command opening the app."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.engine.fake import FakeEngine
from app.ui.config import ConfigError, UIConfig, config_path, load_config, with_command_line
from app.ui.keymap import ACTIONS, KeymapError, check_key, first_key, resolve, split_keys, unbound
from app.ui.screens.model_manager import ModelManager
from app.ui.widgets.prompt_input import PromptInput

from .conftest import settle, wait_until

ROOT = Path(__file__).resolve().parents[3]


def write_config(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_defaults(_isolated_home):
    assert config_path() == _isolated_home / "config.toml"
    config = load_config()
    assert config == UIConfig()
    assert config.keymap["submit"] == "enter" and config.keymap["newline"] == "ctrl+j"
    assert config.exports() == _isolated_home / "exports"


def test_a_full_config(_isolated_home):
    write_config(_isolated_home, """
theme = "textual-light"
on_cancel = "discard"
export_dir = "~/exports"
endpoint = "http://127.0.0.1:11434"
threads = 4
gpu_layers = 0

[keymap]
submit = "ctrl+s"
newline = "enter,ctrl+j"
export = "f11"

[server_models]
sentencing = "demonbyron/qwen3-4b-CriminalLaw-cn:q4"
""")
    config = load_config()
    assert (config.theme, config.on_cancel, config.threads, config.gpu_layers) == (
        "textual-light", "discard", 4, 0)
    assert config.export_dir == Path("~/exports").expanduser()
    assert config.endpoint == "http://127.0.0.1:11434"
    assert (config.keymap["submit"], config.keymap["newline"], config.keymap["export"]) == (
        "ctrl+s", "enter,ctrl+j", "f11")
    assert config.keymap["cancel"] == "escape"  # untouched ids keep their defaults
    assert config.source == _isolated_home / "config.toml"
    assert config.server_models == {"sentencing": "demonbyron/qwen3-4b-CriminalLaw-cn:q4"}


def test_context_sizes_per_assistant_and_the_state_budget(_isolated_home):
    assert (UIConfig().num_ctx, UIConfig().kv_cache_mb) == ({}, 4096)
    write_config(_isolated_home, "kv_cache_mb = 0\n[num_ctx]\nsentencing = 16384\n")
    config = load_config()
    assert config.num_ctx == {"sentencing": 16384} and config.kv_cache_mb == 0


@pytest.mark.parametrize(("text", "message"), [
    ("colour = 'red'", "unknown setting 'colour'"),
    ("theme = 'purple-haze'", "theme 'purple-haze' is not a Textual theme"),
    ("on_cancel = 'maybe'", "on_cancel must be one of ask, keep, discard"),
    ("threads = 0", "threads must be at least 1"),
    ("threads = '4'", "threads must be a int"),
    ("gpu_layers = true", "gpu_layers must be a int"),
    ("[keymap]\nlaunch = 'f5'", "unknown action id 'launch'"),
    ("[keymap]\nsubmit = 5", "keymap.submit must be a string"),
    ("[keymap]\nsubmit = 'ctrl+banana'", "'banana' is not a key name"),
    ("[keymap]\nsubmit = 'hyperdrive+x'", "modifiers must be among"),
    ("[keymap]\nsubmit = ''", "submit: no key given"),
    ("[keymap]\nsubmit = 'ctrl+n'", "'ctrl+n' is bound to both"),
    ("theme = ", "not valid TOML"),
    ("kv_cache_mb = -1", "kv_cache_mb must be 0 or more"),
    ("[num_ctx]\nsentencing = 0", "num_ctx.sentencing must be a positive number"),
    ("[num_ctx]\nsentencing = '16k'", "num_ctx.sentencing must be a positive number"),
    ("server_models = 'x'", "server_models must be a dict"),
    ("[server_models]\ngeneral = ''", "server_models.general must be the server's model"),
    ("[server_models]\ngeneral = 3", "server_models.general must be the server's model"),
])
def test_bad_configs_are_refused_with_the_reason(_isolated_home, text, message):
    write_config(_isolated_home, text)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert message in str(caught.value)
    assert str(_isolated_home / "config.toml") in str(caught.value)


def test_command_line_beats_the_file(_isolated_home):
    write_config(_isolated_home, "theme = 'textual-light'\nendpoint = 'http://127.0.0.1:1'")
    config = with_command_line(load_config(), theme="nord", endpoint="http://127.0.0.1:2",
                               incognito=True)
    assert (config.theme, config.endpoint, config.incognito) == (
        "nord", "http://127.0.0.1:2", True)
    with pytest.raises(ConfigError, match="--theme"):
        with_command_line(load_config(), theme="no-such-theme")


@pytest.mark.parametrize("key", ["ctrl+s", "f5", "enter", "escape", "x", "ctrl+shift+f12",
                                 "question_mark", "pageup", "alt+backspace", "ctrl+backslash"])
def test_keys_textual_can_bind(key):
    check_key(key)


@pytest.mark.parametrize("key", ["ctrl+", "ctrl+ctrl+x", "f99", "shift+nothing", " "])
def test_keys_it_cannot(key):
    with pytest.raises(KeymapError):
        check_key(key)


def test_default_keymap_is_consistent():
    keymap = resolve({})
    assert set(keymap) == {spec.id for spec in ACTIONS}
    assert len({spec.id for spec in ACTIONS}) == len(ACTIONS)
    defaults = [key for spec in ACTIONS for key in split_keys(spec.keys)]
    assert len(defaults) == len(set(defaults))  # no two actions share a default key
    assert unbound(keymap) == []


def test_a_key_the_config_gives_is_taken_from_a_default_of_its_scope():
    """A config written before F10 attached documents keeps loading: its key wins and
    Attach is left without one (the palette still has it)."""
    keymap = resolve({"models": "f10"})
    assert keymap["models"] == "f10" and keymap["attach"] == ""
    assert keymap["new_conversation"] == "ctrl+n"  # the others keep theirs
    assert [(action.id, taker) for action, taker in unbound(keymap)] == [("attach", "models")]
    assert first_key(keymap, "attach") == "“Attach” in ctrl+p"
    assert first_key(keymap, "models") == "f10"
    # Taking a key from another scope is refused: Textual would let the default win there;
    # so is taking one from the message box or the app, whose actions the palette does not
    # all list (Newline, the palette itself).
    with pytest.raises(KeymapError, match="'f1' is bound to both help and attach"):
        resolve({"attach": "f1"})
    with pytest.raises(KeymapError, match="'ctrl\\+j' is bound to both newline and submit"):
        resolve({"submit": "ctrl+j"})
    with pytest.raises(KeymapError, match="'ctrl\\+p' is bound to both palette and quit"):
        resolve({"quit": "ctrl+p"})
    with pytest.raises(KeymapError, match="'f10' is bound to both models and export"):
        resolve({"models": "f10", "export": "f10"})


@pytest.mark.anyio
async def test_a_taken_default_key_runs_the_configs_action(_isolated_home, rig_factory):
    write_config(_isolated_home, "[keymap]\nmodels = 'f10'\n")
    rig = rig_factory(FakeEngine("ok"), config=load_config())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        notices = [n.message for n in rig.app._notifications]
        assert any("Attach (f10 went to models)" in n and "ctrl+p" in n for n in notices)
        await pilot.press("f10")
        await wait_until(pilot, lambda: isinstance(rig.app.screen, ModelManager))
        rig.app.screen.dismiss()
        await wait_until(pilot, lambda: not isinstance(rig.app.screen, ModelManager))
        commands = [c.title for c in rig.app.get_system_commands(rig.app.screen)]
        assert "Attach" in commands and "Models (f10)" in commands


def test_bad_config_file_stops_amicus_with_one_line(_isolated_home, capsys):
    write_config(_isolated_home, "[keymap]\nsubmit = 'ctrl+banana'")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amicus: error: ") and "banana" in err and err.count("\n") == 1


def test_amicus_without_a_command_opens_the_app(monkeypatch):
    seen = {}

    def fake_run(**kwargs):
        seen.update(kwargs)
        return 0

    monkeypatch.setattr("app.ui.run", fake_run)
    assert main(["--incognito", "--theme", "nord", "--endpoint", "http://127.0.0.1:9"]) == 0
    assert seen == {"config_file": None, "theme": "nord", "endpoint": "http://127.0.0.1:9",
                    "incognito": True}


def test_help_stays_textual_free():
    code = ("import sys; from app.cli import _build_parser; _build_parser().format_help(); "
            "print(sorted(m for m in sys.modules if m.startswith('textual')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_app_path_skips_the_subcommands_parser():
    """`amicus` alone never imports the converter (gguf, numpy, llama.cpp) to parse argv."""
    code = ("import sys; from app.cli import _opens_app; print(_opens_app(['--incognito']) "
            "is not None, _opens_app(['--help']) is None, _opens_app(['demo']) is None, "
            "'converters.pipeline' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "True", "True", "False"]


def test_building_the_app_loads_no_model_library(_isolated_home):
    """Startup reads manifests and the store; llama.cpp is imported on first use only."""
    code = ("import sys; from app.ui.app import build_app; from app.ui.config import UIConfig;"
            "build_app(UIConfig(incognito=True)); "
            "print('llama_cpp' in sys.modules, 'app.engine.engine' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.anyio
async def test_remapped_keys_from_the_config_file(_isolated_home, rig_factory):
    write_config(_isolated_home, """
[keymap]
submit = "ctrl+s"
newline = "enter"
export = "f11"
new_conversation = "ctrl+w"
""")
    rig = rig_factory(FakeEngine("ok"), config=load_config())
    async with rig.app.run_test(size=(120, 40)) as pilot:
        prompt = rig.app.screen.query_one(PromptInput)
        prompt.focus()
        await pilot.press("a", "enter", "b")
        assert prompt.text == "a\nb" and rig.engine.calls == []  # Enter is a newline now
        await pilot.press("ctrl+s")
        await settle(pilot, rig.app)
        assert rig.store.messages(1)[0].content == "a\nb"
        await pilot.press("ctrl+w")
        await wait_until(pilot, lambda: rig.app.screen.conversation is None)
        assert "ctrl+s" in rig.app.screen.hint()  # the hints name the keys in use
        footer_keys = {b.binding.key for b in rig.app.screen.active_bindings.values()
                       if b.binding.id in ("submit", "newline", "export")}
        assert footer_keys == {"ctrl+s", "enter", "f11"}
