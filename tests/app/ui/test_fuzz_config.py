"""Fuzzing config.toml: any bytes, and well-formed TOML holding any key with any value, is
refused with one line naming the file (ConfigError, exit 2) or read into settings the app
can use; never another exception or a hang."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.ui.config import UIConfig, load_config
from app.ui.keymap import ACTIONS
from tests.tools.fuzzing import fuzz_settings, mutated_bytes, refused_or_read

_KEYS = ["theme", "on_cancel", "export_dir", "endpoint", "threads", "gpu_layers", "keymap"]
_STRINGS = st.sampled_from(["textual-light", "ask", "keep", "discard", "~/x", "", "enter",
                            "ctrl+s", "f2,ctrl+r", "ctrl+", ",", "shift+enter", "nope"]) | \
    st.text(max_size=10)
_SCALARS = (_STRINGS | st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.booleans()
            | st.floats())


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml_value, value)) + "]"
    # JSON's string escapes are TOML's, except for characters TOML wants escaped too.
    return json.dumps(value).replace("\\u007f", "\\u007F")


_ACTION_IDS = st.sampled_from(sorted(action.id for action in ACTIONS))
_TABLE = st.dictionaries(_ACTION_IDS | st.text(max_size=6),
                         _SCALARS | st.lists(_SCALARS, max_size=2), max_size=3)
_SETTINGS = st.dictionaries(st.sampled_from(_KEYS) | st.text(min_size=1, max_size=6),
                            _SCALARS | st.lists(_SCALARS, max_size=2), max_size=5)


def _toml(settings: dict, table: dict | None) -> str:
    lines = [f"{json.dumps(key)} = {_toml_value(value)}" for key, value in settings.items()
             if key != "keymap"]
    if table is not None:
        lines.append("[keymap]")
        lines += [f"{json.dumps(key)} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _load(path: Path) -> None:
    config = load_config(path)
    assert isinstance(config, UIConfig)
    config.exports()


@fuzz_settings(150)
@given(settings=_SETTINGS, table=st.none() | _TABLE)
def test_any_settings_are_refused_or_read(tmp_path, settings, table):
    path = tmp_path / "config.toml"
    path.write_text(_toml(settings, table), encoding="utf-8", errors="surrogatepass")
    refused_or_read(lambda: _load(path), names=str(path))


_REAL = b"""theme = "textual-light"
on_cancel = "discard"
export_dir = "~/Documents/Amicus"
threads = 2
gpu_layers = 0
[keymap]
submit = "enter"
newline = "ctrl+j,shift+enter"
"""


@fuzz_settings(100)
@given(data=st.data())
def test_damaged_config_bytes_are_refused_or_read(tmp_path, data):
    path = tmp_path / "config.toml"
    path.write_bytes(data.draw(mutated_bytes(_REAL)))
    refused_or_read(lambda: _load(path), names=str(path))
