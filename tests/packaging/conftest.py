"""Fixtures for the offline bundle: demo models, a bundle built without network, and a
way to run commands with no network at all.

Commands that must not use the network run in a network namespace of their own
(`unshare -n`, as root; `unshare -rn` where unprivileged user namespaces are allowed): its
only interface is a loopback that is down, so any connection attempt fails, to the
Internet, a proxy or a resolver alike. Where neither works, they run with every proxy
pointing at a closed local port instead, and the tests say so with a warning.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
if str(PACKAGING) not in sys.path:  # amicus_bundle lives there (packaging/ is no package)
    sys.path.insert(0, str(PACKAGING))

DEMO_MODELS = ("moral-audit", "civic-qa", "intent-safety", "general", "sentencing")
NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there
CONNECTION_WORDS = ("Connection", "connection refused", "Network is unreachable",
                    "Temporary failure in name resolution", "Retrying", "NewConnectionError")


@dataclass(frozen=True)
class Isolation:
    prefix: tuple[str, ...]  # put before a command
    kind: str  # "netns", "userns+netns" or "proxies"

    @property
    def namespace(self) -> bool:
        return self.kind != "proxies"


def _works(prefix: list[str]) -> bool:
    if not shutil.which(prefix[0]):
        return False
    result = subprocess.run([*prefix, "true"], capture_output=True, check=False)
    return result.returncode == 0


@cache
def isolation() -> Isolation:
    for prefix, kind in ((["unshare", "-n"], "netns"), (["unshare", "-rn"], "userns+netns")):
        if _works(prefix):
            return Isolation(tuple(prefix), kind)
    warnings.warn("no network namespace here (unshare -n needs root or user namespaces): "
                  "offline commands run with proxies pointing nowhere instead", stacklevel=1)
    return Isolation((), "proxies")


def offline_env(home: Path, **extra: str) -> dict[str, str]:
    """A small, explicit environment: nothing from the developer's shell (AMICUS_HOME,
    pip configuration, proxies) leaks into an installation that must stand alone."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "TMPDIR": str(home.parent), "PIP_CONFIG_FILE": os.devnull, **extra}
    if isolation().kind == "proxies":
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                     "all_proxy"):
            env[name] = NOWHERE
        env["PIP_NO_INDEX"] = "1"
    return env


def run_offline(command: list[str], env: dict[str, str], *,
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*isolation().prefix, *command], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def base_python() -> str:
    """The interpreter the test venv was made from: a laptop has a plain Python."""
    return getattr(sys, "_base_executable", None) or sys.executable


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    """The five demo models, built once (random weights, a few MB in all)."""
    out = tmp_path_factory.mktemp("demo") / "models"
    code = "import sys; from app.cli import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", code, "demo", "--out", str(out)],
                            capture_output=True, text=True, check=False, cwd=ROOT)
    assert result.returncode == 0, describe(result)
    return out


@dataclass(frozen=True)
class BuiltBundle:
    archive: Path
    output: str  # what the build printed (progress and the size summary)
    isolation: str


@pytest.fixture(scope="session")
def bundle(demo_models, tmp_path_factory) -> BuiltBundle:
    """A bundle of the five demo models, built with no network: Amicus's wheel from this
    source tree, every dependency repacked from this test environment. Installed files
    that differ from their RECORD are packed as they are (--allow-modified): a preparing
    machine's CA bundle, say, may have been amended locally."""
    out = tmp_path_factory.mktemp("bundle")
    command = [sys.executable, str(PACKAGING / "bundle.py"), "--models", "all",
               "--models-dir", str(demo_models), "--from-venv", "--allow-modified",
               "--out", str(out)]
    env = offline_env(out, PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    result = run_offline(command, env)
    assert result.returncode == 0, describe(result)
    archives = sorted(out.glob("amicus-*.tar.gz"))
    assert len(archives) == 1, describe(result)
    return BuiltBundle(archives[0], result.stdout + result.stderr, isolation().kind)


def extract(archive: Path, into: Path) -> Path:
    """Unpack as a user would; returns the bundle's folder."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    (folder,) = into.iterdir()
    return folder
