"""The terminal app's settings: defaults, then the config file, then the command line.

The file is TOML, `config.toml` in the platformdirs config directory (or $AMICUS_HOME, which
moves every Amicus file at once). It is validated strictly: an unknown key, a wrong type or
an unbindable key is an error naming the file and the entry, never silently ignored.

    theme = "textual-light"          # any Textual theme
    on_cancel = "ask"                # after Esc: ask | keep | discard the partial reply
    export_dir = "~/Documents/Amicus"
    endpoint = "http://127.0.0.1:11434"   # an OpenAI-compatible server instead of llama.cpp
    gate_endpoint = "https://gpu.clinic.lan:8001"  # the intent-safety gate on a server
    gate_api = "vllm"                # vllm | llama-server (default: asked of the server)
    api_key_file = "~/.config/amicus/api-key"  # readable by you alone (or AMICUS_API_KEY)
    ca_file = "~/clinic-ca.pem"      # a clinic's own certificate authority for https
    threads = 4                      # CPU threads (default: adapts to the load)
    gpu_layers = 0                   # layers offloaded to the GPU (default: all if possible)
    kv_cache_mb = 4096               # disk budget for saved reading states (0: never save)

    [num_ctx]                        # context size per assistant (default: its Modelfile's)
    sentencing = 16384

    [keymap]                         # action id = "keys" (comma-separated alternatives)
    submit = "ctrl+s"
    newline = "enter"
    export = "ctrl+e"

    [server_models]                  # with endpoint: the server's name for an assistant's
    sentencing = "demonbyron/qwen3-4b-CriminalLaw-cn:q4"   # model (default: the assistant's
                                     # own name, as `ollama create NAME -f Modelfile` names it)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import platformdirs

from app.paths import APP_NAME
from app.ui.keymap import KeymapError, resolve
from converters.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

CONFIG_NAME = "config.toml"
OnCancel = Literal["ask", "keep", "discard"]
ON_CANCEL: tuple[str, ...] = ("ask", "keep", "discard")
DEFAULT_THEME = "textual-dark"
DEFAULT_KV_CACHE_MB = 4096
LIGHT_THEME = "textual-light"


class ConfigError(InputError):
    """The config file cannot be read or says something invalid (one line, names it)."""


@dataclass(frozen=True)
class UIConfig:
    theme: str = DEFAULT_THEME
    on_cancel: OnCancel = "ask"
    export_dir: Path | None = None  # None: default_export_dir()
    endpoint: str | None = None
    gate_endpoint: str | None = None  # None: the installed classifier, embedded
    gate_api: str | None = None  # None: asked of the gate's server
    api_key_file: Path | None = None  # the key for every server (after the environment's)
    ca_file: Path | None = None  # None: the system's certificate store
    threads: int | None = None
    gpu_layers: int | None = None
    kv_cache_mb: int = DEFAULT_KV_CACHE_MB
    num_ctx: dict[str, int] = field(default_factory=dict)  # per assistant, over the Modelfile
    keymap: dict[str, str] = field(default_factory=lambda: resolve({}))
    server_models: dict[str, str] = field(default_factory=dict)  # assistant -> server's name
    incognito: bool = False  # command line only: keep nothing on disk
    source: Path | None = None  # the file it was read from, if any

    def exports(self) -> Path:
        return self.export_dir or default_export_dir()


def config_path() -> Path:
    """$AMICUS_HOME/config.toml when AMICUS_HOME is set, else the platformdirs config dir."""
    home = os.environ.get("AMICUS_HOME")
    base = Path(home) if home else Path(platformdirs.user_config_dir(APP_NAME))
    return base / CONFIG_NAME


def default_export_dir() -> Path:
    """Exports go where people look for documents (under $AMICUS_HOME when it is set)."""
    home = os.environ.get("AMICUS_HOME")
    if home:
        return Path(home) / "exports"
    return Path(platformdirs.user_documents_dir()) / "Amicus"


def _builtin_themes() -> set[str]:
    from textual.theme import BUILTIN_THEMES

    return set(BUILTIN_THEMES)


_FIELDS: dict[str, tuple[type, ...]] = {
    "theme": (str,), "on_cancel": (str,), "export_dir": (str,), "endpoint": (str,),
    "gate_endpoint": (str,), "gate_api": (str,), "api_key_file": (str,), "ca_file": (str,),
    "threads": (int,), "gpu_layers": (int,), "keymap": (dict,), "server_models": (dict,),
    "kv_cache_mb": (int,), "num_ctx": (dict,),
}



def load_config(path: Path | None = None) -> UIConfig:
    """The config file's settings over the defaults; a missing file means defaults."""
    path = path or config_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UIConfig()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    try:
        return replace(_parse(data), source=path)
    except (ValueError, KeymapError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _parse(data: dict[str, Any]) -> UIConfig:
    for key, value in data.items():
        kinds = _FIELDS.get(key)
        if kinds is None:
            raise ValueError(f"unknown setting {key!r}; known: {', '.join(_FIELDS)}")
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ValueError(f"{key} must be a {kinds[0].__name__}, not {value!r}")
    return UIConfig(
        theme=_theme(data.get("theme", DEFAULT_THEME)),
        on_cancel=_on_cancel(data.get("on_cancel", "ask")),
        export_dir=_directory(data.get("export_dir")),
        endpoint=data.get("endpoint") or None,
        gate_endpoint=data.get("gate_endpoint") or None,
        gate_api=_gate_api(data.get("gate_api")),
        api_key_file=_directory(data.get("api_key_file")),
        ca_file=_directory(data.get("ca_file")),
        threads=_positive("threads", data.get("threads")),
        gpu_layers=_gpu_layers(data.get("gpu_layers")),
        kv_cache_mb=_at_least_zero("kv_cache_mb", data.get("kv_cache_mb", DEFAULT_KV_CACHE_MB)),
        num_ctx=_num_ctx(data.get("num_ctx", {})),
        keymap=resolve(_keymap(data.get("keymap", {}))),
        server_models=_server_models(data.get("server_models", {})),
    )


def _theme(name: str) -> str:
    if name not in _builtin_themes():
        raise ValueError(f"theme {name!r} is not a Textual theme; choose from "
                         f"{', '.join(sorted(_builtin_themes()))}")
    return name


def _on_cancel(value: str) -> OnCancel:
    if value not in ON_CANCEL:
        raise ValueError(f"on_cancel must be one of {', '.join(ON_CANCEL)}, not {value!r}")
    return value  # type: ignore[return-value]


def _directory(value: str | None) -> Path | None:
    """A path setting, `~` expanded (a folder or a file)."""
    return Path(os.path.expanduser(value)) if value else None


def _gate_api(value: str | None) -> str | None:
    if value is None:
        return None
    from app.engine.server_client import SERVER_APIS  # http.client: only when used

    if value not in SERVER_APIS:
        raise ValueError(f"gate_api must be one of {', '.join(SERVER_APIS)}, not {value!r}")
    return value


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def _at_least_zero(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be 0 or more, not {value}")
    return value


def _num_ctx(table: dict[str, Any]) -> dict[str, int]:
    """Tokens per assistant; whether a size fits the model and memory is checked when the
    model loads (the app shows the estimate where num_ctx is chosen)."""
    for name, value in table.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"num_ctx.{name} must be a positive number of tokens, "
                             f"not {value!r}")
    return dict(table)


def _gpu_layers(value: int | None) -> int | None:
    if value is not None and value < -1:
        raise ValueError(f"gpu_layers must be -1 (all), 0 (none) or a count, not {value}")
    return value


def _keymap(table: dict[str, Any]) -> dict[str, str]:
    for action_id, keys in table.items():
        if not isinstance(keys, str):
            raise ValueError(f"keymap.{action_id} must be a string such as \"ctrl+s\" or "
                             f"\"f2,ctrl+r\", not {keys!r}")
    return dict(table)


def _server_models(table: dict[str, Any]) -> dict[str, str]:
    for assistant, model in table.items():
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"server_models.{assistant} must be the server's model name, "
                             f"such as \"{assistant}\", not {model!r}")
    return {assistant: model.strip() for assistant, model in table.items()}


def with_command_line(config: UIConfig, *, theme: str | None = None,
                      endpoint: str | None = None, incognito: bool = False) -> UIConfig:
    """The command line wins over the file (which won over the defaults)."""
    changes: dict[str, Any] = {"incognito": incognito or config.incognito}
    if theme is not None:
        try:
            changes["theme"] = _theme(theme)
        except ValueError as exc:
            raise ConfigError(f"--theme: {exc}") from exc
    if endpoint is not None:
        changes["endpoint"] = endpoint
    return replace(config, **changes)
