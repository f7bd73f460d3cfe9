"""install.sh, the launcher: it finds a Python 3.10+ (the one --python names, else
pythonX.Y, python3, python) and hands install.py every argument, or says clearly that there
is none. Each test runs the launcher with a PATH holding only the Pythons it sets up."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import PACKAGING, describe

WHEELS_PYTHON = "3.11"  # what the bundle's wheels are built for, in these tests
RECORDER = """import json, os, sys
print(json.dumps({"argv": sys.argv[1:], "python": os.environ.get("WHICH_PYTHON"),
                  "isolated": sys.flags.isolated, "name": os.environ.get("AMICUS_INSTALLER")}))
sys.exit(int(os.environ.get("RECORDER_EXIT", "0")))
"""
SHELLS = [name for name in ("dash", "bash") if shutil.which(name)]


def _bundle(tmp_path: Path, install_py: str = RECORDER) -> Path:
    """A bundle folder with the launcher (filled in as bundle.py does) and an install.py
    that records how it was started."""
    folder = tmp_path / "bundle"
    folder.mkdir()
    text = (PACKAGING / "install.sh").read_text(encoding="utf-8")
    (folder / "install.sh").write_text(text.replace("@PYTHON_VERSION@", WHEELS_PYTHON))
    (folder / "install.py").write_text(install_py)
    return folder


def _path(tmp_path: Path, pythons: dict[str, str | None]) -> Path:
    """A PATH folder with dirname and the named Pythons: a working one (None), or one that
    reports an older version as a Python < 3.10 answers the launcher's probe."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "dirname").symlink_to(shutil.which("dirname") or "/usr/bin/dirname")
    for name, old_version in pythons.items():
        script = folder / name
        if old_version is None:
            script.write_text(f"#!/bin/sh\nWHICH_PYTHON={name} exec "
                              f'{shlex.quote(sys.executable)} "$@"\n')
        else:
            script.write_text(f"#!/bin/sh\necho {old_version}\nexit 1\n")
        script.chmod(0o755)
    return folder


def _launch(shell: str, bundle: Path, path: Path, *args: str,
            **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([shutil.which(shell) or shell, str(bundle / "install.sh"), *args],
                          env={"PATH": str(path), "HOME": str(bundle), **env},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_wheels_python_runs_install_py_with_every_argument(tmp_path, shell):
    bundle = _bundle(tmp_path)
    path = _path(tmp_path, {"python3": None, f"python{WHEELS_PYTHON}": None})
    args = ["--prefix", "/opt/a folder", "--force"]
    result = _launch(shell, bundle, path, *args, RECORDER_EXIT="3")
    assert result.returncode == 3, describe(result)  # install.py's status is the launcher's
    seen = json.loads(result.stdout)
    assert seen == {"argv": args, "python": f"python{WHEELS_PYTHON}", "isolated": 1,
                    "name": "install.sh"}


def test_a_python_older_than_3_10_is_passed_over(tmp_path):
    bundle = _bundle(tmp_path)
    result = _launch("sh", bundle, _path(tmp_path, {"python3": "3.8", "python": None}))
    assert result.returncode == 0, describe(result)
    assert json.loads(result.stdout)["python"] == "python"


@pytest.mark.parametrize("form", ["separate", "joined"])
def test_the_python_option_is_tried_first(tmp_path, form):
    bundle = _bundle(tmp_path)
    path = _path(tmp_path, {f"python{WHEELS_PYTHON}": None, "chosen-python": None})
    chosen = str(path / "chosen-python")
    args = ["--python", chosen] if form == "separate" else [f"--python={chosen}"]
    result = _launch("sh", bundle, path, *args)
    assert result.returncode == 0, describe(result)
    seen = json.loads(result.stdout)
    assert seen["python"] == "chosen-python"
    assert seen["argv"] == args  # install.py checks that it is the wheels' Python


@pytest.mark.parametrize(("pythons", "found"), [({"python3": "3.8"}, "python3=3.8"),
                                                ({}, "found: none")])
def test_without_a_python_3_10_the_launcher_says_so(tmp_path, pythons, found):
    result = _launch("sh", _bundle(tmp_path), _path(tmp_path, pythons))
    assert result.returncode == 1, describe(result)
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("install.sh: error: Python 3.10 or newer is needed")
    assert found in line
    assert f"Install Python {WHEELS_PYTHON}" in line and "--python PATH" in line


def test_install_py_answers_in_the_launchers_name(tmp_path):
    """The real install.py behind the launcher: help and a usage error (exit 2) name
    install.sh, the command the user typed."""
    bundle = _bundle(tmp_path, (PACKAGING / "install.py").read_text(encoding="utf-8"))
    path = _path(tmp_path, {"python3": None})
    helped = _launch("sh", bundle, path, "--help")
    assert helped.returncode == 0, describe(helped)
    assert "usage: install.sh" in helped.stdout and "--uninstall" in helped.stdout
    refused = _launch("sh", bundle, path, "--no-such-option")
    assert refused.returncode == 2, describe(refused)
    assert "install.sh: error:" in refused.stderr
