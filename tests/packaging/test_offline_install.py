"""The offline bundle end to end: built without network, installed with no network at all
(a network namespace), then `amicus models verify` and `amicus ask` run there; a damaged
bundle is refused with nothing installed; --uninstall removes what was installed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from functools import cache
from pathlib import Path

import pytest

from tests.packaging.conftest import (
    CONNECTION_WORDS,
    DEMO_MODELS,
    base_python,
    describe,
    extract,
    isolation,
    offline_env,
    run_offline,
)

EXIT_CORRUPT = 3


def _no_connection_talk(*outputs: str) -> None:
    text = "\n".join(outputs)
    for words in CONNECTION_WORDS:
        assert words.lower() not in text.lower(), f"{words!r} in the output:\n{text}"


def _inet_connects(trace: Path) -> list[str]:
    """connect() calls to an IPv4/IPv6 address in an strace log (AF_UNIX ones are local)."""
    lines = trace.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if "connect(" in line and re.search(r"AF_INET6?\b", line)]


@cache
def _strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    probe = [*isolation().prefix, "strace", "-f", "-qq", "-o", os.devnull, "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def _traced(command: list[str], trace: Path) -> list[str]:
    """The command under strace where it works: every connect() attempt is logged, so
    'no network was attempted' is seen, not only inferred from success."""
    if not _strace_works():
        return command
    return ["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), *command]


def _install_command(folder: Path, home: Path) -> list[str]:
    return ["bash", str(folder / "install.sh"), "--python", base_python(),
            "--prefix", str(home / "opt" / "amicus"), "--bin-dir", str(home / "bin")]


def _nothing_installed(home: Path) -> None:
    assert not (home / "opt").exists() or not any((home / "opt").iterdir())
    assert not (home / "bin" / "amicus").exists()
    assert not (home / ".local" / "share" / "amicus").exists()
    leftovers = [p for p in home.rglob("*") if ".amicus-install." in p.name]
    assert not leftovers, leftovers


def test_the_build_was_offline_and_reports_sizes(bundle):
    assert "Bundle sizes:" in bundle.output
    assert re.search(r"archive\s+amicus-[\w.-]+\.tar\.gz\s+[\d.]+ MB", bundle.output)
    assert "llama-cpp-python build: CPU" in bundle.output
    _no_connection_talk(bundle.output)
    digest = bundle.archive.with_name(bundle.archive.name + ".sha256").read_text().split()[0]
    assert len(digest) == 64


def test_the_archive_holds_everything_with_checksums_first(bundle):
    with tarfile.open(bundle.archive) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers()
                 if m.isfile()]
        for name in ("install.py", "install.sh", "install.ps1"):
            text = tar.extractfile(f"{bundle.archive.name[:-7]}/{name}").read()
            # filled in by the build; ASCII, as Windows PowerShell 5.1 reads it (ANSI)
            assert re.findall(r"@[A-Z_]+@", text.decode("ascii")) == [], name
    assert names[:5] == ["SHA256SUMS", "bundle.json", "install.py", "install.sh", "install.ps1"]
    for model in DEMO_MODELS:
        assert f"models/{model}/manifest.json" in names
        assert f"models/{model}/{model}.Q4_K_M.gguf" in names
    wheels = [n for n in names if n.startswith("wheelhouse/")]
    assert any(n.startswith("wheelhouse/llama_cpp_python-") for n in wheels)
    assert any(n.startswith("wheelhouse/amicus-") for n in wheels)


@pytest.mark.skipif(os.name != "posix", reason="install.sh is the POSIX installer")
def test_installs_and_runs_with_no_network(bundle, tmp_path):
    folder = extract(bundle.archive, tmp_path / "usb")
    home = tmp_path / "home"
    home.mkdir()
    env = offline_env(home)
    if isolation().namespace:  # the namespace really has no network
        probe = run_offline([base_python(), "-c", "import socket; socket.create_connection("
                             "('1.1.1.1', 53), timeout=3)"], env)
        assert probe.returncode != 0 and "unreachable" in probe.stderr.lower(), describe(probe)

    trace = tmp_path / "strace.log"
    installed = run_offline(_traced(_install_command(folder, home), trace), env)
    assert installed.returncode == 0, describe(installed)
    assert "all checksums match" in installed.stdout
    assert "llama.cpp: GPU offload" in installed.stdout
    assert "llama.cpp runs on this machine" in installed.stdout

    amicus = str(home / "bin" / "amicus")
    verified = run_offline(_traced([amicus, "models", "verify"], trace.with_suffix(".2")), env)
    assert verified.returncode == 0, describe(verified)
    for model in DEMO_MODELS:
        assert f"{model}: ok" in verified.stdout
    answered = run_offline(_traced([amicus, "ask", "general", "hello", "--max-tokens", "4"],
                                   trace.with_suffix(".3")), env)
    assert answered.returncode == 0, describe(answered)
    assert "demo model" in answered.stderr  # the installed demo model answered

    _no_connection_talk(installed.stdout, installed.stderr, verified.stdout, verified.stderr,
                        answered.stdout, answered.stderr)
    for log in (trace, trace.with_suffix(".2"), trace.with_suffix(".3")):
        if log.exists():
            assert _inet_connects(log) == [], log.read_text()
    # the models went where the app looks by default (platformdirs, no AMICUS_HOME)
    models = home / ".local" / "share" / "amicus" / "models"
    assert sorted(p.name for p in models.iterdir()) == sorted(DEMO_MODELS)


def _rewrite_checksums(folder: Path) -> None:
    """SHA256SUMS made anew, as for a bundle that was built that way."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names]
    (folder / "SHA256SUMS").write_text("".join(lines))


def _with_a_broken_model(folder: Path) -> None:
    """A bundle whose checksums all match, but whose general model llama.cpp cannot load:
    the installer's last check before committing fails."""
    gguf = folder / "models" / "general" / "general.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    manifest_path = gguf.with_name("manifest.json")
    manifest = json.loads(manifest_path.read_text())
    for output in manifest["outputs"]:
        if output["file"] == gguf.name:
            output.update(sha256=hashlib.sha256(gguf.read_bytes()).hexdigest(), size=64)
    manifest_path.write_text(json.dumps(manifest))
    _rewrite_checksums(folder)


def _snapshot(*roots: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for root in roots for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.skipif(os.name != "posix", reason="install.sh is the POSIX installer")
def test_a_failed_reinstall_changes_nothing_and_uninstall_removes_it_all(bundle, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = offline_env(home)
    data = tmp_path / "data"
    folder = extract(bundle.archive, tmp_path / "usb")
    installed = run_offline([*_install_command(folder, home), "--data-dir", str(data)], env)
    assert installed.returncode == 0, describe(installed)
    launcher = home / "bin" / "amicus"
    assert str(data) in launcher.read_text()  # a chosen data folder is kept by the command
    (data / "amicus.sqlite3").write_text("conversations")
    prefix = home / "opt" / "amicus"
    before = _snapshot(data, home / "bin", prefix / "venv" / "bin")
    receipt = (prefix / "receipt.tsv").read_text()

    broken = extract(bundle.archive, tmp_path / "usb2")
    _with_a_broken_model(broken)
    failed = run_offline([*_install_command(broken, home), "--data-dir", str(data)], env)
    assert failed.returncode == 1, describe(failed)
    assert "could not run general" in failed.stderr
    assert "nothing was installed" in failed.stderr
    assert _snapshot(data, home / "bin", prefix / "venv" / "bin") == before
    assert (prefix / "receipt.tsv").read_text() == receipt
    assert [p for p in tmp_path.rglob("*") if ".amicus-install." in p.name] == []

    removed = run_offline([str(prefix / "install.sh"), "--uninstall", "--prefix", str(prefix)],
                          env)
    assert removed.returncode == 0, describe(removed)
    assert not prefix.exists()
    assert not launcher.exists()
    assert list((data / "models").iterdir()) == []
    assert (data / "amicus.sqlite3").read_text() == "conversations"


def _flip_a_byte(folder: Path) -> str:
    name = "models/general/general.Q4_K_M.gguf"
    path = folder / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return f"{name}: checksum mismatch"


def _lose_a_wheel(folder: Path) -> str:
    wheel = next((folder / "wheelhouse").glob("numpy-*.whl"))
    wheel.unlink()
    return f"wheelhouse/{wheel.name}: missing"


def _add_a_stray_wheel(folder: Path) -> str:
    (folder / "wheelhouse" / "numpy-99.0-py3-none-any.whl").write_bytes(b"PK")
    return "wheelhouse/numpy-99.0-py3-none-any.whl: not listed in SHA256SUMS"


def _cut_the_checksums_short(folder: Path) -> str:
    sums = folder / "SHA256SUMS"
    lines = sums.read_text().splitlines(keepends=True)
    sums.write_text("".join(lines[:-3]))
    return "not listed in SHA256SUMS"


def _edit_the_manifest(folder: Path) -> str:
    manifest = folder / "models" / "sentencing" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["outputs"][0]["sha256"] = "0" * 64  # the manifest is covered by SHA256SUMS too
    manifest.write_text(json.dumps(data))
    return "models/sentencing/manifest.json: checksum mismatch"


@pytest.mark.skipif(os.name != "posix", reason="install.sh is the POSIX installer")
@pytest.mark.parametrize("damage", [_flip_a_byte, _lose_a_wheel, _add_a_stray_wheel,
                                    _cut_the_checksums_short, _edit_the_manifest])
def test_a_damaged_bundle_is_refused_and_nothing_is_installed(bundle, tmp_path, damage):
    folder = extract(bundle.archive, tmp_path / "usb")
    expected = damage(folder)
    home = tmp_path / "home"
    home.mkdir()
    result = run_offline(_install_command(folder, home), offline_env(home))
    assert result.returncode == EXIT_CORRUPT, describe(result)
    assert "corrupt or incomplete" in result.stderr
    assert expected in result.stderr
    assert "nothing was installed" in result.stderr
    _nothing_installed(home)


@pytest.mark.skipif(os.name != "posix", reason="install.sh is the POSIX installer")
def test_a_truncated_archive_is_refused(bundle, tmp_path):
    """A copy cut short: tar stops with an error; whoever runs install.sh from what it
    managed to extract is told the bundle is incomplete, and nothing is installed."""
    cut = tmp_path / bundle.archive.name
    data = bundle.archive.read_bytes()
    cut.write_bytes(data[: len(data) * 6 // 10])
    into = tmp_path / "usb"
    with tarfile.open(cut) as tar, pytest.raises((tarfile.ReadError, EOFError)):
        tar.extractall(into, filter="data")
    (folder,) = into.iterdir()
    home = tmp_path / "home"
    home.mkdir()
    result = run_offline(_install_command(folder, home), offline_env(home))
    assert result.returncode == EXIT_CORRUPT, describe(result)
    assert "corrupt or incomplete" in result.stderr
    assert ": missing" in result.stderr or "checksum mismatch" in result.stderr
    _nothing_installed(home)
