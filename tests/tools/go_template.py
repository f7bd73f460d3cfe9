"""Build and run tests/tools/ollama_template: Ollama's template rendering, in real Go.

The Go program is compiled once per test session with the `go` of the machine (Debian's
`golang-go`; `make test` installs it when missing). Cases go in as one JSON batch, so a
whole test module costs one process.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "ollama_template"


@dataclass(frozen=True)
class GoRender:
    prompt: str
    error: str
    thinking_capable: bool
    opening_tag: str
    closing_tag: str


def go_available() -> bool:
    return shutil.which("go") is not None


def build(out_dir: Path) -> Path:
    """Compile the renderer into out_dir; offline (no module downloads, local toolchain)."""
    binary = out_dir / "ollama_template"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "-mod=mod",
           "CGO_ENABLED": "0"}
    done = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=SOURCE, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"go build failed:\n{done.stderr}")
    return binary


@dataclass(frozen=True)
class OllamaTemplates:
    """Renders Modelfile TEMPLATEs with the compiled Go program."""

    binary: Path

    def render_many(self, cases: Sequence[dict[str, Any]]) -> list[GoRender]:
        done = subprocess.run([str(self.binary)], input=json.dumps(list(cases)),
                              capture_output=True, text=True, timeout=60, check=True)
        return [GoRender(r["prompt"], r.get("error", ""), r["thinking_capable"],
                         r["opening_tag"], r["closing_tag"]) for r in json.loads(done.stdout)]

    def render(self, template: str, messages: Sequence[dict[str, str]], *, system: str = "",
               think: bool | None = None, server: bool = False) -> str:
        (result,) = self.render_many([case(template, messages, system=system, think=think,
                                           server=server)])
        if result.error:
            raise ValueError(result.error)
        return result.prompt


def case(template: str, messages: Sequence[dict[str, str]], *, system: str = "",
         think: bool | None = None, server: bool = False,
         preset: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """One render request: `messages` as the API receives them (role, content, thinking),
    `system` and `preset` as the Modelfile's SYSTEM and MESSAGEs."""
    return {"template": template, "system": system, "messages": list(messages),
            "preset": list(preset), "think": think, "server": server}


_shared: OllamaTemplates | None = None


def shared_renderer() -> OllamaTemplates:
    """One build per test process (go's own cache makes a rebuild about a second)."""
    global _shared
    if _shared is None:
        out = Path(tempfile.mkdtemp(prefix="amicus-ollama-template-"))
        atexit.register(shutil.rmtree, out, True)
        _shared = OllamaTemplates(build(out))
    return _shared
