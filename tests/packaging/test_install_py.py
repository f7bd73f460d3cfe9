"""install.py's pieces, fast and without pip: the checksum check, the rollback journal,
a whole install and uninstall with the steps that need a real environment (venv + pip,
`amicus models verify`, one token) replaced by stand-ins, the Windows layout, finding a
Python, and the exit codes. The real thing runs in test_offline_install.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import zipfile
from pathlib import Path

import install as installer
import pytest
from amicus_bundle import archive

from tests.packaging.conftest import PACKAGING, base_python

THIS_PYTHON = "{}.{}".format(*sys.version_info[:2])


@pytest.fixture(autouse=True)
def _bundle_values(monkeypatch):
    """What bundle.py fills in, for a bundle made for this machine and this Python."""
    monkeypatch.setattr(installer, "AMICUS_VERSION", "0.0.1")
    monkeypatch.setattr(installer, "PYTHON_VERSION", THIS_PYTHON)
    monkeypatch.setattr(installer, "BUNDLE_NAME", "amicus-test")
    monkeypatch.setattr(installer, "TARGET_OS", installer.this_os())
    monkeypatch.setattr(installer, "PROG", "install.sh")
    monkeypatch.delenv("AMICUS_HOME", raising=False)


def _model(root: Path, name: str, chat: bool, size: int) -> None:
    folder = root / "models" / name
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"name": name}))
    (folder / f"{name}.Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(size))
    if chat:
        (folder / "Modelfile").write_text(f"FROM ./{name}.Q4_K_M.gguf\n")


def _bundle(tmp_path: Path, name: str = "usb") -> Path:
    """A small bundle laid out and checksummed by the bundle builder's own functions."""
    root = tmp_path / name
    _model(root, "general", chat=True, size=4096)
    _model(root, "tiny-chat", chat=True, size=64)
    _model(root, "intent-safety", chat=False, size=16)  # a classifier: no Modelfile
    (root / "wheelhouse").mkdir()
    (root / "wheelhouse" / "amicus-0.0.1-py3-none-any.whl").write_bytes(b"PK-amicus")
    for script in ("install.py", "install.sh", "install.ps1"):
        shutil.copyfile(PACKAGING / script, root / script)
    archive.write_info(root, {"format": 1})
    archive.write_checksums(root)
    return root


# --- checksums ---------------------------------------------------------------------------

def test_a_bundle_written_by_the_builder_passes(tmp_path, capsys):
    installer.verify_bundle(_bundle(tmp_path))
    out = capsys.readouterr().out
    assert "13 files" in out
    assert "all checksums match" in out


def _problems(root: Path) -> list[str]:
    with pytest.raises(installer.CorruptBundle) as caught:
        installer.verify_bundle(root)
    assert caught.value.exit_code == 3
    return caught.value.problems


def _flip(root: Path) -> None:
    gguf = root / "models" / "general" / "general.Q4_K_M.gguf"
    data = bytearray(gguf.read_bytes())
    data[100] ^= 0xFF
    gguf.write_bytes(bytes(data))


def _cut_sums(root: Path) -> None:
    lines = (root / "SHA256SUMS").read_text().splitlines(keepends=True)
    (root / "SHA256SUMS").write_text("".join(lines[:-2]))


def _escape(root: Path) -> None:
    with open(root / "SHA256SUMS", "a") as sums:
        sums.write(f"{'0' * 64}  ../outside\n")


@pytest.mark.parametrize(("damage", "expected"), [
    (_flip, ["models/general/general.Q4_K_M.gguf: checksum mismatch (corrupt, truncated or "
             "tampered)"]),
    (lambda root: (root / "models" / "tiny-chat" / "Modelfile").unlink(),
     ["models/tiny-chat/Modelfile: missing"]),
    (lambda root: (root / "wheelhouse" / "numpy-9.9-py3-none-any.whl").write_bytes(b"PK"),
     ["wheelhouse/numpy-9.9-py3-none-any.whl: not listed in SHA256SUMS (not part of this "
      "bundle)"]),
    (_cut_sums, ["wheelhouse/amicus-0.0.1-py3-none-any.whl: not listed in SHA256SUMS (not "
                 "part of this bundle)",
                 "models/tiny-chat/tiny-chat.Q4_K_M.gguf: not listed in SHA256SUMS (not part "
                 "of this bundle)",
                 "SHA256SUMS lists 11 files, the bundle has 13"]),
    (_escape, ["SHA256SUMS line 14: malformed"]),
    (lambda root: (root / "SHA256SUMS").unlink(), ["SHA256SUMS: missing"]),
])
def test_each_problem_of_a_damaged_bundle_is_named(tmp_path, damage, expected):
    root = _bundle(tmp_path)
    damage(root)
    assert sorted(_problems(root)) == sorted(expected)


def test_sums_without_bundle_json_and_install_py_are_incomplete(tmp_path):
    root = _bundle(tmp_path)
    sums = root / "SHA256SUMS"
    kept = [line for line in sums.read_text().splitlines(keepends=True)
            if not line.endswith(("  bundle.json\n", "  install.py\n"))]
    sums.write_text("".join(kept))
    problems = _problems(root)
    assert "SHA256SUMS is incomplete (bundle.json and install.py not listed)" in problems
    assert "install.py: not listed in SHA256SUMS (not part of this bundle)" in problems


def test_files_a_file_browser_adds_are_not_problems(tmp_path):
    root = _bundle(tmp_path)
    (root / "models" / ".DS_Store").write_bytes(b"x")
    (root / "Thumbs.db").write_bytes(b"x")
    installer.verify_bundle(root)


def test_a_long_list_of_problems_is_shortened():
    error = installer.CorruptBundle([f"f{i}: missing" for i in range(25)])
    lines = str(error).splitlines()
    assert lines[0] == "this bundle is corrupt or incomplete; nothing was installed."
    assert lines[1:21] == [f"  f{i}: missing" for i in range(20)]
    assert lines[21] == "  ... and 5 more"
    assert "run install.sh again" in lines[22]


# --- the journal: every step undone ------------------------------------------------------

def test_rollback_undoes_renames_in_reverse_and_removes_what_was_created(tmp_path):
    (tmp_path / "prefix").mkdir()
    (tmp_path / "prefix" / "old").write_text("earlier installation")
    journal = installer.Journal()
    journal.make_dir(tmp_path / "a" / "b" / "c")
    stage = journal.stage(tmp_path / "a" / "b" / "c" / "stage")
    stage.mkdir()
    (stage / "new").write_text("new installation")
    journal.move(tmp_path / "prefix", tmp_path / "prefix.old")
    journal.move(stage, tmp_path / "prefix")
    assert (tmp_path / "prefix" / "new").exists()

    journal.rollback()
    assert (tmp_path / "prefix" / "old").read_text() == "earlier installation"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prefix"]


def test_ctrl_c_cannot_stop_the_rollback_halfway(monkeypatch):
    seen = []
    monkeypatch.setattr(installer.Journal, "rollback",
                        lambda journal: seen.append(signal.getsignal(signal.SIGINT)))
    before = signal.getsignal(signal.SIGINT)
    installer.undo(installer.Journal())
    assert seen == [signal.SIG_IGN]
    assert signal.getsignal(signal.SIGINT) == before


def test_rollback_keeps_a_created_folder_that_is_no_longer_empty(tmp_path):
    journal = installer.Journal()
    journal.make_dir(tmp_path / "bin")
    (tmp_path / "bin" / "other-tool").write_text("someone else's")
    journal.rollback()
    assert (tmp_path / "bin" / "other-tool").exists()


# --- a whole installation, the environment faked -----------------------------------------

class Calls:
    """Stand-ins for the steps that need a real environment; they record what they got."""

    def __init__(self) -> None:
        self.verified: list[str] = []
        self.smoked: list[str] = []
        self.fail_at: str | None = None

    def create_environment(self, python: str, venv: Path, wheelhouse: Path) -> None:
        scripts = installer.venv_scripts(venv)
        scripts.mkdir(parents=True)
        (scripts / "activate").write_text(f'VIRTUAL_ENV="{venv}"\n')
        (scripts / "amicus").write_bytes(b"\x7fELF\0" + str(venv).encode())  # binary: kept
        (venv / "pyvenv.cfg").write_text(f"command = {python} -m venv {venv}\n")
        self._maybe_fail("environment")

    def report_backend(self, venv: Path) -> None:
        self._maybe_fail("backend")

    def verify_models(self, venv: Path, mstage: Path, names: list[str]) -> None:
        assert all((mstage / "models" / n / "manifest.json").is_file() for n in names)
        self.verified = names
        self._maybe_fail("verify")

    def smoke_test(self, venv: Path, mstage: Path, name: str) -> None:
        self.smoked.append(name)
        self._maybe_fail("smoke")

    def _maybe_fail(self, step: str) -> None:
        if self.fail_at == step:
            raise installer.InstallError(f"{step} failed")
        if self.fail_at == f"{step}:ctrl-c":
            raise KeyboardInterrupt


@pytest.fixture
def calls(monkeypatch) -> Calls:
    fake = Calls()
    for step in ("create_environment", "report_backend", "verify_models", "smoke_test"):
        monkeypatch.setattr(installer, step, getattr(fake, step))
    return fake


def _options(home: Path, *extra: str) -> installer.Options:
    return installer.parse_args(["--prefix", str(home / "opt" / "amicus"), "--bin-dir",
                                 str(home / "bin"), "--data-dir", str(home / "data"),
                                 "--python", sys.executable, *extra])


def _main(monkeypatch, root: Path, home: Path, *extra: str) -> int:
    monkeypatch.setattr(installer, "HERE", root)
    return installer.main(["--prefix", str(home / "opt" / "amicus"), "--bin-dir",
                           str(home / "bin"), "--data-dir", str(home / "data"), *extra])


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_install_puts_everything_in_place_and_uninstall_removes_it(tmp_path, calls, capsys):
    root, home = _bundle(tmp_path), tmp_path / "home"
    installer.install(_options(home), root)
    prefix, data = home / "opt" / "amicus", home / "data"

    assert calls.verified == ["general", "intent-safety", "tiny-chat"]
    assert calls.smoked == ["tiny-chat"]  # the smallest model with a Modelfile
    assert sorted(p.name for p in (data / "models").iterdir()) == calls.verified
    assert _snapshot(data / "models" / "general") == _snapshot(root / "models" / "general")
    launcher = (home / "bin" / "amicus").read_text()
    assert installer.LAUNCHER_MARK in launcher
    assert f"AMICUS_HOME=${{AMICUS_HOME:-{data}}}" in launcher  # the chosen data folder
    assert f"exec {prefix}/venv/bin/amicus \"$@\"" in launcher
    assert os.access(home / "bin" / "amicus", os.X_OK)
    # the environment's scripts name the final folder, not the staging one
    assert (prefix / "venv" / "bin" / "activate").read_text() == f'VIRTUAL_ENV="{prefix}/venv"\n'
    assert f"-m venv {prefix}/venv" in (prefix / "venv" / "pyvenv.cfg").read_text()
    assert b".amicus-install." in (prefix / "venv" / "bin" / "amicus").read_bytes()
    receipt = installer.read_receipt(prefix / "receipt.tsv")
    assert receipt is not None and receipt.models_dir == data / "models"
    assert receipt.launcher == home / "bin" / "amicus"
    assert receipt.models["general"] == hashlib.sha256(
        (root / "models" / "general" / "manifest.json").read_bytes()).hexdigest()
    assert os.access(prefix / "install.sh", os.X_OK) and (prefix / "install.py").is_file()
    assert [p for p in tmp_path.rglob("*") if ".amicus" in p.name] == []
    out = capsys.readouterr().out
    assert "Amicus 0.0.1 is installed." in out
    assert f"Remove it with: {prefix}/install.sh --uninstall --prefix {prefix}" in out

    (data / "amicus.sqlite3").write_text("conversations")
    (data / "models" / "general" / "manifest.json").write_text("{}")  # replaced since
    installer.uninstall(prefix)
    out = capsys.readouterr().out
    assert not prefix.exists() and not (home / "bin" / "amicus").exists()
    assert sorted(p.name for p in (data / "models").iterdir()) == ["general"]
    assert f"kept {data / 'models' / 'general'}: it was replaced after installation" in out
    assert (data / "amicus.sqlite3").read_text() == "conversations"
    assert f"Conversations and settings in {data} were kept" in out


@pytest.mark.parametrize("step", ["environment", "backend", "verify", "smoke"])
def test_a_failed_reinstall_leaves_the_earlier_installation_as_it_was(
        tmp_path, calls, monkeypatch, capsys, step):
    root, home = _bundle(tmp_path), tmp_path / "home"
    assert _main(monkeypatch, root, home) == 0
    before = _snapshot(home)
    calls.fail_at = step
    assert _main(monkeypatch, root, home) == 1
    err = capsys.readouterr().err
    assert f"install.sh: error: {step} failed" in err
    assert "install.sh: nothing was installed (everything staged was removed)." in err
    assert _snapshot(home) == before
    assert [p for p in tmp_path.rglob("*") if ".amicus" in p.name] == []


@pytest.mark.parametrize("step", ["environment", "verify", "smoke"])
def test_ctrl_c_exits_130_with_nothing_installed(tmp_path, calls, monkeypatch, capsys, step):
    root, home = _bundle(tmp_path), tmp_path / "home"
    calls.fail_at = f"{step}:ctrl-c"
    assert _main(monkeypatch, root, home) == 130
    assert "nothing was installed" in capsys.readouterr().err
    assert not home.exists()  # the folders it created are removed again


def test_a_failure_while_committing_undoes_the_renames(tmp_path, calls, monkeypatch):
    root, home = _bundle(tmp_path), tmp_path / "home"
    assert _main(monkeypatch, root, home) == 0
    before = _snapshot(home)
    real_move = installer.Journal.move

    def move(journal, source: Path, target: Path) -> None:
        if target == home / "bin" / "amicus":  # the very last rename
            raise PermissionError(f"{target}: permission denied")
        real_move(journal, source, target)

    monkeypatch.setattr(installer.Journal, "move", move)
    assert _main(monkeypatch, root, home) == 1
    assert _snapshot(home) == before


def test_a_corrupt_bundle_exits_3_before_anything_is_written(tmp_path, calls, monkeypatch,
                                                              capsys):
    root, home = _bundle(tmp_path), tmp_path / "home"
    _flip(root)
    assert _main(monkeypatch, root, home) == 3
    err = capsys.readouterr().err
    assert "install.sh: error: this bundle is corrupt or incomplete" in err
    assert "general.Q4_K_M.gguf: checksum mismatch" in err
    assert not home.exists()


def test_what_this_installer_did_not_create_is_replaced_only_with_force(tmp_path, calls,
                                                                        monkeypatch, capsys):
    root, home = _bundle(tmp_path), tmp_path / "home"
    foreign = home / "data" / "models" / "general"
    foreign.mkdir(parents=True)
    (foreign / "manifest.json").write_text("someone else's")
    assert _main(monkeypatch, root, home) == 1
    assert f"{foreign} exists and was not installed by this bundle" in capsys.readouterr().err
    (home / "bin").mkdir()
    (home / "bin" / "amicus").write_text("#!/bin/sh\necho another amicus\n")
    assert _main(monkeypatch, root, home) == 1
    assert "was not written by this installer: pass --force" in capsys.readouterr().err
    assert _main(monkeypatch, root, home, "--force") == 0
    assert installer.LAUNCHER_MARK in (home / "bin" / "amicus").read_text()
    # a reinstall of what this installer put there needs no --force
    assert _main(monkeypatch, root, home) == 0


def test_a_prefix_that_is_not_an_installation_is_refused(tmp_path, calls, monkeypatch,
                                                         capsys):
    root, home = _bundle(tmp_path), tmp_path / "home"
    (home / "opt" / "amicus").mkdir(parents=True)
    assert _main(monkeypatch, root, home) == 1
    assert "is not an Amicus installation: choose another --prefix" in capsys.readouterr().err


def test_models_of_an_earlier_bundle_stay_on_the_receipt(tmp_path, calls, monkeypatch):
    home = tmp_path / "home"
    assert _main(monkeypatch, _bundle(tmp_path, "first"), home) == 0
    smaller = _bundle(tmp_path, "second")
    shutil.rmtree(smaller / "models" / "general")
    archive.write_info(smaller, {"format": 1})
    archive.write_checksums(smaller)
    assert _main(monkeypatch, smaller, home) == 0
    receipt = installer.read_receipt(home / "opt" / "amicus" / "receipt.tsv")
    assert receipt is not None
    assert sorted(receipt.models) == ["general", "intent-safety", "tiny-chat"]


def test_uninstall_without_an_installation_fails_and_names_the_option(tmp_path, capsys):
    assert installer.main(["--uninstall", "--prefix", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert f"no Amicus installation at {tmp_path / 'none'} (no receipt.tsv); pass --prefix" in err
    assert "nothing was installed" not in err


def test_receipts_of_the_older_installers_are_read(tmp_path):
    sh = tmp_path / "sh.tsv"
    sh.write_text("amicus-receipt\t1\nbundle\tb\nmodels_dir\t/d/models\nlauncher\t/b/amicus\n"
                  f"model\tgeneral\t{'a' * 64}\n")
    ps1 = tmp_path / "ps1.tsv"
    ps1.write_text("amicus-receipt\t1\r\nbundle\tb\r\nmodels_dir\tC:\\d\\models\r\n"
                   f"path_entry\tC:\\p\\bin\r\nmodel\tgeneral\t{'b' * 64}\r\n")
    old_sh, old_ps1 = installer.read_receipt(sh), installer.read_receipt(ps1)
    assert old_sh == installer.Receipt(Path("/d/models"), Path("/b/amicus"), "b", [],
                                       {"general": "a" * 64})
    assert old_ps1 is not None and old_ps1.launcher is None
    assert old_ps1.path_entries == ["C:\\p\\bin"] and old_ps1.models == {"general": "b" * 64}
    assert installer.read_receipt(tmp_path / "missing.tsv") is None


# --- Windows ---------------------------------------------------------------------------

def test_the_windows_layout_installs_and_uninstalls(tmp_path, calls, monkeypatch, capsys):
    """On Windows the launcher is amicus.cmd in the prefix's bin folder (moved in with the
    environment, which joins the user's PATH), and runs python.exe from Scripts\\."""
    monkeypatch.setattr(installer, "WINDOWS", True)
    monkeypatch.setattr(installer, "PROG", "install.ps1")
    root, home = _bundle(tmp_path), tmp_path / "home"
    prefix = home / "Programs" / "Amicus"
    options = installer.Options(prefix, installer.default_bin_dir(prefix), home / "data",
                                None, False, False)
    installer.install(options, root)
    launcher = (prefix / "bin" / "amicus.cmd").read_bytes().decode()
    assert launcher.startswith(f"@echo off\r\nrem {installer.LAUNCHER_MARK}\r\n")
    assert f'if not defined AMICUS_HOME set "AMICUS_HOME={home / "data"}"\r\n' in launcher
    assert (f'"{prefix / "venv" / "Scripts" / "python.exe"}" -I -X utf8 -c '
            f'"{installer.AMICUS_MAIN}" %*\r\n') in launcher
    assert (prefix / "venv" / "Scripts" / "activate").read_text() == \
        f'VIRTUAL_ENV="{prefix / "venv"}"\n'
    receipt = installer.read_receipt(prefix / "receipt.tsv")
    assert receipt is not None and receipt.path_entries == [str(prefix / "bin")]
    out = capsys.readouterr().out
    assert "(on your PATH in new terminals)" in out
    assert f'-File "{prefix / "install.ps1"}" -Uninstall -Prefix "{prefix}"' in out

    installer.uninstall(prefix)
    assert f"removed {prefix / 'bin'} from PATH" in capsys.readouterr().out
    assert not prefix.exists()


def test_amicus_cmd_escapes_percent_signs(monkeypatch):
    monkeypatch.setattr(installer, "WINDOWS", True)
    text = installer.launcher_bytes(Path("C:/Users/a%PATH%b/Amicus"), Path("D:/100%")).decode()
    assert "a%%PATH%%b" in text and "a%PATH%b" not in text
    assert 'set "AMICUS_HOME=D:/100%%"' in text
    assert text.endswith(" %*\r\nexit /b %ERRORLEVEL%\r\n")  # cmd's own % stay single


def test_windows_commands_and_options(monkeypatch):
    monkeypatch.setattr(installer, "WINDOWS", True)
    venv = Path("C:/p/venv")
    assert installer.venv_python(venv) == venv / "Scripts" / "python.exe"
    assert installer.amicus_command(venv)[1:5] == ["-I", "-X", "utf8", "-c"]
    assert installer.python_candidates()[0] == ["py", f"-{THIS_PYTHON}"]
    monkeypatch.setattr(installer, "PROG", "install.ps1")
    assert [installer.option(o) for o in ("--prefix", "--data-dir", "--force")] == \
        ["-Prefix", "-DataDir", "-Force"]


def test_the_user_path_gains_and_loses_one_entry():
    assert installer.path_with("C:\\a;C:\\b;", "C:\\amicus\\bin") == "C:\\a;C:\\b;C:\\amicus\\bin"
    assert installer.path_with("C:\\A;c:\\amicus\\BIN", "C:\\amicus\\bin") == \
        "C:\\A;c:\\amicus\\BIN"  # Windows paths ignore case
    assert installer.path_with("", "C:\\x") == "C:\\x"
    assert installer.path_without("C:\\a;C:\\Amicus\\bin;;C:\\b", "c:\\amicus\\bin") == \
        "C:\\a;C:\\b"


# --- this machine ------------------------------------------------------------------------

def test_the_python_for_the_wheels_is_found_or_named(monkeypatch, tmp_path):
    assert installer.find_python(None) == sys.executable  # the one running this is X.Y
    with pytest.raises(installer.InstallError, match="--python /no/python: not found"):
        installer.find_python("/no/python")
    monkeypatch.setattr(installer, "PYTHON_VERSION", "2.7")
    with pytest.raises(installer.InstallError,
                       match=rf"is Python {THIS_PYTHON}; this bundle's wheels are built for "
                             r"Python 2\.7"):
        installer.find_python(sys.executable)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(base_python())
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(installer.InstallError) as caught:
        installer.find_python(None)
    assert str(caught.value) == (f"Python 2.7 is needed (this bundle's wheels are built for "
                                 f"it); found: python3={THIS_PYTHON}. Install Python 2.7 or "
                                 "pass --python PATH")


def test_a_bundle_for_another_system_is_refused(monkeypatch):
    monkeypatch.setattr(installer, "TARGET_OS", "@TARGET_OS@")  # the source tree's copy
    with pytest.raises(installer.InstallError, match="not part of a bundle"):
        installer.check_platform()
    monkeypatch.setattr(installer, "TARGET_OS", "windows")
    with pytest.raises(installer.InstallError, match=r"for Windows: run install\.ps1 there"):
        installer.check_platform()
    monkeypatch.setattr(installer, "TARGET_OS", "plan9")
    with pytest.raises(installer.InstallError, match="this bundle is for plan9, this machine"):
        installer.check_platform()


def test_the_default_data_folder_comes_from_the_bundled_platformdirs(tmp_path, monkeypatch):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    with zipfile.ZipFile(wheelhouse / "platformdirs-9.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("platformdirs/__init__.py",
                       f"def user_data_dir(name):\n    return {str(tmp_path)!r} + '/' + name\n")
    assert installer.find_data_home(None, sys.executable, wheelhouse) == tmp_path / "amicus"
    monkeypatch.setenv("AMICUS_HOME", "relative/home")
    assert installer.find_data_home(None, sys.executable, wheelhouse) == \
        Path.cwd() / "relative" / "home"
    assert installer.find_data_home(tmp_path, sys.executable, wheelhouse) == tmp_path


def _amicus_that(monkeypatch, code: str) -> None:
    monkeypatch.setattr(installer, "amicus_command", lambda venv: [sys.executable, "-c", code])


def test_a_llama_build_for_another_cpu_is_named(monkeypatch, tmp_path):
    _amicus_that(monkeypatch, "import os, resource, signal; "
                              "resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); "  # no core file
                              "os.kill(os.getpid(), signal.SIGILL)")
    with pytest.raises(installer.InstallError, match="illegal instruction: this bundle's "
                                                     "llama-cpp-python was compiled for a "
                                                     "newer CPU"):
        installer.smoke_test(tmp_path, tmp_path, "general")


def test_a_failed_token_shows_amicus_output(monkeypatch, tmp_path, capsys):
    _amicus_that(monkeypatch, "import os, sys; print('cannot load', os.environ['AMICUS_HOME'],"
                              " file=sys.stderr); sys.exit(2)")
    with pytest.raises(installer.InstallError,
                       match=r"could not run general on this machine \(exit 2; output above"):
        installer.smoke_test(tmp_path / "venv", tmp_path / "stage", "general")
    assert f"cannot load {tmp_path / 'stage'}" in capsys.readouterr().err


# --- options and the launcher ------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--bogus"], ["--prefix"], ["--prefix", "a\tb"],
                                  ["--pre", "x"]])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        installer.main(argv)
    assert caught.value.code == 2
    assert "usage: install.sh [options]" in capsys.readouterr().err


def test_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = installer.parse_args(["--prefix", "opt/", "--bin-dir", "~/bin", "--data-dir", "d"])
    assert options.prefix == tmp_path / "opt"
    assert options.bin_dir == Path.home() / "bin"
    assert options.data_dir == tmp_path / "d"
