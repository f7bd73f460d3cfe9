#!/usr/bin/env python3
"""Install Amicus and its models from this offline bundle, or remove them (Linux, macOS,
Windows). install.sh and install.ps1 only find a Python and run this file.

    install.py [--prefix DIR] [--bin-dir DIR] [--data-dir DIR] [--python PATH] [--force]
    install.py --uninstall [--prefix DIR]

Nothing here uses the network. Every file of the bundle is checked against SHA256SUMS
before anything is used; everything is built in staging folders next to its final place
and moved there at the end, so a corrupt bundle, a failure or Ctrl-C installs nothing.
Exit status: 0 done, 1 failure, 2 bad arguments, 3 corrupt or incomplete bundle,
130 interrupted.

Python 3.10+, standard library only: this runs on a laptop before anything is installed,
so it cannot import amicus, and its InstallError does not derive from amicus's
AmicusError (the exit codes mean the same).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Filled in by packaging/bundle.py when the bundle is built.
AMICUS_VERSION = "@AMICUS_VERSION@"
PYTHON_VERSION = "@PYTHON_VERSION@"
BUNDLE_NAME = "@BUNDLE_NAME@"
TARGET_OS = "@TARGET_OS@"

HERE = Path(__file__).resolve().parent  # the bundle (or, once installed, the prefix)
WINDOWS = os.name == "nt"
PROG = os.environ.get("AMICUS_INSTALLER", "install.py")  # the launcher sets its own name

EXIT_FAILURE, EXIT_CORRUPT, EXIT_INTERRUPTED = 1, 3, 130  # 2, bad arguments: argparse's
LAUNCHER_MARK = "amicus launcher, written by the Amicus offline bundle installer"
RECEIPT_NAME = "receipt.tsv"
STAGE_PREFIX = ".amicus-install."
INSTALLERS = ("install.py", "install.sh", "install.ps1")  # kept in the prefix to uninstall
REQUIRED = ("bundle.json", "install.py")  # a SHA256SUMS without them is cut short
IGNORED = {".DS_Store", "Thumbs.db", "desktop.ini"}  # added by file browsers
BIG_FILE = 100_000_000  # bytes: hashing it takes long enough to say so
AMICUS_MAIN = "import sys; from app.cli import main; sys.exit(main())"
BACKEND_REPORT = (
    "from converters.llama_runtime import gpu_offload_supported, system_info\n"
    "print('llama.cpp: GPU offload %s' % ('supported' if gpu_offload_supported()\n"
    "                                      else 'not in this build (CPU)'))\n"
    "print('           ' + system_info())")
# How a process killed by an illegal instruction exits: a signal (POSIX), a shell's
# 128 + SIGILL, or Windows' STATUS_ILLEGAL_INSTRUCTION.
ILLEGAL_INSTRUCTION = {-4, 132, 0xC000001D}


class InstallError(Exception):
    """A failure the user can act on, with its exit status. Not amicus's AmicusError:
    amicus is not installed when this runs, so nothing of it can be imported."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CorruptBundle(InstallError):
    """The bundle does not match its SHA256SUMS: exit 3, every problem named."""

    def __init__(self, problems: list[str]) -> None:
        shown = [f"  {problem}" for problem in problems[:20]]
        if len(problems) > 20:
            shown.append(f"  ... and {len(problems) - 20} more")
        super().__init__("\n".join([
            "this bundle is corrupt or incomplete; nothing was installed.", *shown,
            "Copy the archive again (compare its sha256 with the .sha256 file made with it),"
            f" extract it into an empty folder and run {PROG} again."]), EXIT_CORRUPT)
        self.problems = problems


def say(text: str = "") -> None:
    print(text, flush=True)


def warn(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- options ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Options:
    prefix: Path
    bin_dir: Path
    data_dir: Path | None
    python: str | None
    force: bool
    uninstall: bool


def option(name: str) -> str:
    """An option as the user spells it: install.ps1 takes -DataDir where install.sh and
    install.py take --data-dir, and messages should name what the user can type."""
    if PROG != "install.ps1":
        return name
    return "-" + "".join(word.capitalize() for word in name[2:].split("-"))


def absolute(path: str | Path) -> Path:
    """A path made absolute without requiring it to exist (symlinks kept as given)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def default_prefix() -> Path:
    if WINDOWS:
        local = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(local) / "Programs" / "Amicus"
    return Path.home() / ".local" / "opt" / "amicus"


def default_bin_dir(prefix: Path) -> Path:
    """Windows: the prefix's bin folder, which joins the user's PATH; elsewhere the
    per-user bin folder that is usually on PATH already."""
    return prefix / "bin" if WINDOWS else Path.home() / ".local" / "bin"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, allow_abbrev=False,
        usage=f"{PROG} [options]\n       {PROG} --uninstall [--prefix DIR]",
        description=f"Install Amicus {AMICUS_VERSION} and the models of {BUNDLE_NAME}, "
                    "offline.",
        epilog="exit status: 0 done, 1 failure, 2 bad arguments, 3 corrupt or incomplete "
               "bundle, 130 interrupted")
    parser.add_argument("--prefix", metavar="DIR",
                        help=f"where Amicus's own environment goes (default: {default_prefix()})")
    parser.add_argument("--bin-dir", metavar="DIR",
                        help="where the `amicus` command goes (default: ~/.local/bin; "
                             "Windows: PREFIX\\bin, added to the user's PATH)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="Amicus's data folder for the models (default: $AMICUS_HOME, "
                             "else the user data folder Amicus uses, e.g. "
                             "~/.local/share/amicus); the `amicus` command is set to use it")
    parser.add_argument("--python", metavar="PATH",
                        help=f"Python {PYTHON_VERSION} to build the environment with "
                             "(default: found on PATH)")
    parser.add_argument("--force", action="store_true",
                        help="replace a model or an `amicus` command this bundle did not "
                             "install")
    parser.add_argument("--uninstall", action="store_true",
                        help="remove what an earlier run installed (conversations are kept)")
    return parser


def parse_args(argv: list[str] | None) -> Options:
    """The options, every path absolute; bad arguments exit 2 (argparse's own status)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prefix = absolute(args.prefix) if args.prefix else default_prefix()
    options = Options(prefix, absolute(args.bin_dir) if args.bin_dir else
                      default_bin_dir(prefix), absolute(args.data_dir) if args.data_dir
                      else None, args.python, args.force, args.uninstall)
    for name, path in (("--prefix", options.prefix), ("--bin-dir", options.bin_dir),
                       ("--data-dir", options.data_dir)):
        if path is not None and any(c in str(path) for c in "\t\n\r"):
            # the receipt is tab-separated, one entry a line
            parser.error(f"{option(name)}: tabs and newlines are not supported")
    return options


# --- checking the bundle ---------------------------------------------------------------

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_name(name: str) -> bool:
    """A SHA256SUMS entry must stay inside the bundle, on every platform."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts \
        and "\\" not in name and ":" not in name


def read_sums(root: Path) -> tuple[dict[str, str], list[str]]:
    """SHA256SUMS as {name: sha256}, and the problems with its own lines."""
    sums = root / "SHA256SUMS"
    if not sums.is_file():
        raise CorruptBundle(["SHA256SUMS: missing"])
    listed: dict[str, str] = {}
    problems = []
    with open(sums, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            digest, sep, name = line.rstrip("\n").partition("  ")
            if not sep or len(digest) != 64 or not safe_name(name):
                problems.append(f"SHA256SUMS line {number}: malformed")
            else:
                listed[name] = digest.lower()
    return listed, problems


def listed_problems(root: Path, listed: dict[str, str]) -> list[str]:
    """Listed files that are missing or differ from their checksum."""
    problems = []
    for name, digest in listed.items():
        path = root.joinpath(*name.split("/"))
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        if path.stat().st_size > BIG_FILE:
            say(f"  {name} ({path.stat().st_size / 1e9:.1f} GB)...")
        if sha256_of(path) != digest:
            problems.append(f"{name}: checksum mismatch (corrupt, truncated or tampered)")
    return problems


def unlisted_problems(root: Path, listed: dict[str, str]) -> list[str]:
    """Files SHA256SUMS does not name: pip would pick up a stray wheel."""
    problems = []
    for folder, _, files in os.walk(root):
        for file_name in files:
            name = Path(folder, file_name).relative_to(root).as_posix()
            if name != "SHA256SUMS" and name not in listed and file_name not in IGNORED:
                problems.append(f"{name}: not listed in SHA256SUMS (not part of this bundle)")
    return problems


def completeness_problems(root: Path, listed: dict[str, str]) -> list[str]:
    """A SHA256SUMS cut short: bundle.json's file count must match what it lists."""
    problems = []
    try:
        expected = json.loads((root / "bundle.json").read_text(encoding="utf-8"))["file_count"]
    except (OSError, ValueError, KeyError, TypeError):
        expected = None
    if "bundle.json" in listed and expected != len(listed):
        problems.append(f"SHA256SUMS lists {len(listed)} files, the bundle has {expected}")
    missing = [name for name in REQUIRED if name not in listed]
    if missing:
        problems.append(f"SHA256SUMS is incomplete ({' and '.join(missing)} not listed)")
    return problems


def verify_bundle(root: Path) -> None:
    """Every listed file present with its checksum, nothing unlisted, nothing cut short;
    else CorruptBundle naming each problem."""
    say("Checking every file of the bundle against SHA256SUMS...")
    listed, problems = read_sums(root)
    total = sum((root / n).stat().st_size for n in listed if (root / n).is_file())
    say(f"  {len(listed)} files, {total / 1e6:.1f} MB")
    problems += listed_problems(root, listed)
    problems += unlisted_problems(root, listed)
    problems += completeness_problems(root, listed)
    if problems:
        raise CorruptBundle(problems)
    say("  all checksums match")


# --- this machine ----------------------------------------------------------------------

def this_os() -> str:
    """The name bundle.json gives this machine's OS."""
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    if sys.platform in ("win32", "cygwin", "msys"):
        return "windows"
    return sys.platform


def check_platform() -> None:
    if TARGET_OS.startswith("@"):  # bundle.py fills it in
        raise InstallError("this install.py is not part of a bundle (its values are not "
                           "filled in): build one with packaging/bundle.py")
    here = this_os()
    if here == TARGET_OS:
        return
    if TARGET_OS == "windows":
        raise InstallError("this bundle is for Windows: run install.ps1 there")
    if here == "windows":
        raise InstallError(f"this bundle is for {TARGET_OS}: run install.sh there")
    raise InstallError(f"this bundle is for {TARGET_OS}, this machine runs {here}")


def probe_python(command: list[str]) -> tuple[str, str] | None:
    """(X.Y, its executable) of a Python command, or None where it does not run."""
    code = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"
    try:
        result = subprocess.run([*command, "-c", code], capture_output=True, text=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) < 2:
        return None
    return lines[0].strip(), lines[1].strip()


def python_candidates() -> list[list[str]]:
    """Where a Python X.Y is looked for, in order (Windows: the py launcher first)."""
    if WINDOWS:
        return [["py", f"-{PYTHON_VERSION}"], ["python"], ["python3"]]
    return [[f"python{PYTHON_VERSION}"], ["python3"], ["python"]]


def requested_python(requested: str) -> str:
    """--python PATH: it must exist and be the Python the wheels are built for."""
    path = shutil.which(requested)
    if path is None:
        raise InstallError(f"{option('--python')} {requested}: not found")
    found = probe_python([path])
    if found is None or found[0] != PYTHON_VERSION:
        raise InstallError(f"{path} is Python {found[0] if found else '?'}; this bundle's "
                           f"wheels are built for Python {PYTHON_VERSION}")
    return path


def find_python(requested: str | None) -> str:
    """The Python X.Y that builds the environment: --python, else the one running this
    (the launchers prefer X.Y), else the first X.Y among the usual commands."""
    if requested:
        return requested_python(requested)
    if "{}.{}".format(*sys.version_info[:2]) == PYTHON_VERSION:
        return sys.executable
    found = []
    for command in python_candidates():
        if shutil.which(command[0]) is None:
            continue
        result = probe_python(command)
        if result and result[0] == PYTHON_VERSION:
            return result[1]
        found.append(f"{command[0]}={result[0] if result else '?'}")
    raise InstallError(f"Python {PYTHON_VERSION} is needed (this bundle's wheels are built "
                       f"for it); found: {' '.join(found) or 'none'}. Install Python "
                       f"{PYTHON_VERSION} or pass {option('--python')} PATH")


def check_venv_support(python: str) -> None:
    result = subprocess.run([python, "-c", "import venv, ensurepip"], capture_output=True,
                            check=False)
    if result.returncode != 0:
        raise InstallError(f"{python} cannot create virtual environments (Debian/Ubuntu: "
                           f"install the python{PYTHON_VERSION}-venv package from the "
                           "offline media, then run this again)")


def platformdirs_data_dir(python: str, wheelhouse: Path) -> Path:
    """platformdirs' user data folder for amicus, from platformdirs imported straight from
    its (verified) wheel, in a Python of its own: nothing is installed yet."""
    wheels = sorted(wheelhouse.glob("platformdirs-*.whl"))
    if not wheels:
        raise InstallError(f"{wheelhouse}: no platformdirs wheel (the bundle is incomplete)")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import platformdirs; "
            "print(platformdirs.user_data_dir('amicus'))")
    result = subprocess.run([python, "-I", "-c", code, str(wheels[-1])], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise InstallError(f"could not work out Amicus's data folder: {result.stderr.strip()}")
    return absolute(result.stdout.strip())


def find_data_home(data_dir: Path | None, python: str, wheelhouse: Path) -> Path:
    """The data folder by the rule app.paths.data_dir follows ($AMICUS_HOME, else
    platformdirs' user data folder), found before anything is installed."""
    if data_dir is not None:
        return data_dir
    home = os.environ.get("AMICUS_HOME")
    if home:
        return absolute(home)
    return platformdirs_data_dir(python, wheelhouse)


def bundle_models(root: Path) -> list[str]:
    """The bundle's models: the folders of models/ that hold a manifest."""
    folder = root / "models"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "manifest.json").is_file())


# --- the receipt: what an installation put where, for --uninstall and reinstalls -------

@dataclass
class Receipt:
    models_dir: Path
    launcher: Path | None = None
    bundle: str = ""
    path_entries: list[str] = field(default_factory=list)  # Windows: added to user PATH
    models: dict[str, str] = field(default_factory=dict)  # name: sha256 of its manifest


def read_receipt(path: Path) -> Receipt | None:
    """The receipt at path (written by this installer or by the older install.sh and
    install.ps1, same format), or None where there is none."""
    if not path.is_file():
        return None
    fields: dict[str, list[list[str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        kind, *values = line.split("\t")
        fields.setdefault(kind, []).append(values)
    if not fields.get("models_dir"):
        raise InstallError(f"{path}: not an Amicus receipt (no models_dir)")
    launcher = fields.get("launcher", [[""]])[0][0]
    return Receipt(Path(fields["models_dir"][0][0]), Path(launcher) if launcher else None,
                   fields.get("bundle", [[""]])[0][0],
                   [v[0] for v in fields.get("path_entry", [])],
                   {v[0]: v[1] for v in fields.get("model", []) if len(v) == 2})


def receipt_text(receipt: Receipt) -> str:
    lines = ["amicus-receipt\t1", f"bundle\t{receipt.bundle}",
             f"models_dir\t{receipt.models_dir}"]
    if receipt.launcher is not None:
        lines.append(f"launcher\t{receipt.launcher}")
    lines += [f"path_entry\t{entry}" for entry in receipt.path_entries]
    lines += [f"model\t{name}\t{digest}" for name, digest in receipt.models.items()]
    return "\n".join(lines) + "\n"


def earlier_models(old: Receipt | None, models_dir: Path) -> dict[str, str]:
    """Models an earlier run put into the same folder (a bundle may carry fewer)."""
    return dict(old.models) if old is not None and old.models_dir == models_dir else {}


# --- checks before anything is written -------------------------------------------------

def is_our_launcher(path: Path) -> bool:
    try:
        return LAUNCHER_MARK in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def launcher_path(bin_dir: Path) -> Path:
    return bin_dir / ("amicus.cmd" if WINDOWS else "amicus")


def preflight(options: Options, models_dir: Path, names: list[str]) -> None:
    """Refuse, before writing anything, to replace what this installer did not create."""
    receipt = options.prefix / RECEIPT_NAME
    if options.prefix.exists() and not receipt.is_file():
        raise InstallError(f"{options.prefix} exists and is not an Amicus installation: "
                           f"choose another {option('--prefix')}")
    launcher = launcher_path(options.bin_dir)
    if launcher.exists() and not is_our_launcher(launcher) and not options.force:
        raise InstallError(f"{launcher} exists and was not written by this installer: pass "
                           f"{option('--force')} to replace it, or {option('--bin-dir')} DIR")
    ours = earlier_models(read_receipt(receipt), models_dir)
    for name in names:
        if (models_dir / name).exists() and name not in ours and not options.force:
            raise InstallError(f"{models_dir / name} exists and was not installed by this "
                               f"bundle: remove it (amicus models remove {name}) or pass "
                               f"{option('--force')} to replace it")


# --- staging and commit ----------------------------------------------------------------

class Journal:
    """What an installation did so far, so that a failure or Ctrl-C undoes all of it:
    the folders it created, the renames it made (undone in reverse) and the staging
    paths to remove."""

    def __init__(self) -> None:
        self.created: list[Path] = []
        self.moves: list[tuple[Path, Path]] = []
        self.staged: list[Path] = []

    def make_dir(self, path: Path, mode: int = 0o755) -> None:
        """mkdir -p, remembering each folder it creates."""
        missing = []
        while not path.is_dir():
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            folder.mkdir(mode)
            self.created.append(folder)

    def stage(self, path: Path) -> Path:
        """A staging path, removed again if the installation does not complete."""
        self.staged.append(path)
        return path

    def move(self, source: Path, target: Path) -> None:
        rename(source, target)
        self.moves.append((source, target))

    def rollback(self) -> None:
        for source, target in reversed(self.moves):
            with contextlib.suppress(OSError):
                os.rename(target, source)
        for path in self.staged:
            remove(path)
        for folder in reversed(self.created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty


def rename(source: Path, target: Path) -> None:
    """A rename; on Windows retried for a while, since an antivirus scanning freshly
    written files holds them open for a moment."""
    attempts = 10 if WINDOWS else 1
    for attempt in range(1, attempts + 1):
        try:
            os.rename(source, target)
            return
        except PermissionError:
            if attempt == attempts:
                raise
            time.sleep(0.5)


def _retry_writable(function: Callable[[str], object], path: str, error: object) -> None:
    os.chmod(path, stat.S_IWRITE)
    function(path)


def rmtree(path: Path) -> None:
    """shutil.rmtree that also deletes read-only files, which Windows refuses to delete."""
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_retry_writable)
    else:
        shutil.rmtree(path, onerror=_retry_writable)


def remove(path: Path) -> None:
    """Remove a file or folder tree if it is there; never fails (used while undoing)."""
    if path.is_dir() and not path.is_symlink():
        with contextlib.suppress(OSError):
            rmtree(path)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def run_step(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run a command whose output the user sees; a failure stops the installation."""
    result = subprocess.run(command, env=env, check=False)
    if result.returncode != 0:
        raise InstallError(f"{what} failed (exit {result.returncode})")


def venv_python(venv: Path) -> Path:
    return venv / "Scripts" / "python.exe" if WINDOWS else venv / "bin" / "python"


def venv_scripts(venv: Path) -> Path:
    return venv / ("Scripts" if WINDOWS else "bin")


def amicus_command(venv: Path) -> list[str]:
    """The environment's `amicus`. Windows: through python.exe, since pip's amicus.exe
    names the staging folder's interpreter inside a binary that cannot be relocated
    (-I: the current folder never shadows Amicus's modules; -X utf8: Chinese text in any
    console code page)."""
    if WINDOWS:
        return [str(venv_python(venv)), "-I", "-X", "utf8", "-c", AMICUS_MAIN]
    return [str(venv / "bin" / "amicus")]


def create_environment(python: str, venv: Path, wheelhouse: Path) -> None:
    """A virtual environment holding Amicus from the bundle's verified wheels only: no
    index, no cache, no user pip.conf."""
    say(f"Creating Amicus's environment (Python {PYTHON_VERSION}, no network)...")
    run_step([python, "-m", "venv", str(venv)], "creating the virtual environment")
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INPUT": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    run_step([str(venv_python(venv)), "-m", "pip", "install", "--no-index", "--find-links",
              str(wheelhouse), "--only-binary=:all:", "--no-cache-dir", "--progress-bar",
              "off", f"amicus=={AMICUS_VERSION}"], "pip install", env)


def report_backend(venv: Path) -> None:
    """Which llama.cpp backend this laptop got, shown before anything is committed."""
    run_step([str(venv_python(venv)), "-I", "-c", BACKEND_REPORT], "loading llama.cpp")


def stage_models(root: Path, mstage: Path, names: list[str]) -> None:
    (mstage / "models").mkdir()
    for name in names:
        shutil.copytree(root / "models" / name, mstage / "models" / name)


def verify_models(venv: Path, mstage: Path, names: list[str]) -> None:
    """The copies checked by Amicus itself, against their manifests."""
    say("Checking the copied models with `amicus models verify`...")
    run_step([*amicus_command(venv), "models", "verify", *names], "amicus models verify",
             {**os.environ, "AMICUS_HOME": str(mstage)})


def smoke_model(root: Path, names: list[str]) -> str | None:
    """The smallest chat model of the bundle (it has a Modelfile): a quick check."""
    def size(name: str) -> int:
        return sum(p.stat().st_size for p in (root / "models" / name).rglob("*") if p.is_file())

    chat = [name for name in names if (root / "models" / name / "Modelfile").is_file()]
    return min(chat, key=size) if chat else None


def smoke_test(venv: Path, mstage: Path, name: str) -> None:
    """One generated token proves llama.cpp loads and computes on this machine before
    anything is committed: a llama-cpp-python built for another CPU (llama.cpp compiles
    for the build machine's CPU unless told otherwise) dies here on an illegal
    instruction, not later."""
    say(f"Generating one token with {name}...")
    result = subprocess.run([*amicus_command(venv), "ask", name, "Hello", "--max-tokens", "1"],
                            env={**os.environ, "AMICUS_HOME": str(mstage)},
                            capture_output=True, text=True, errors="replace", check=False)
    if result.returncode == 0:
        say("  llama.cpp runs on this machine")
        return
    sys.stderr.write(result.stdout + result.stderr)
    if result.returncode in ILLEGAL_INSTRUCTION:
        raise InstallError("llama.cpp stopped on an illegal instruction: this bundle's "
                           "llama-cpp-python was compiled for a newer CPU. Rebuild the bundle "
                           "with a portable wheel (packaging/gpu-build.sh cpu, then bundle.py "
                           "--wheel)")
    raise InstallError(f"Amicus could not run {name} on this machine "
                       f"(exit {result.returncode}; output above)")


def removal_command(prefix: Path) -> str:
    """What removes the installation, run from the copy of the installer it keeps."""
    if WINDOWS:
        return (f'powershell -ExecutionPolicy Bypass -File "{prefix / "install.ps1"}" '
                f'-Uninstall -Prefix "{prefix}"')
    return f"{shlex.quote(str(prefix / 'install.sh'))} --uninstall --prefix " \
           f"{shlex.quote(str(prefix))}"


def cmd_escaped(path: Path) -> str:
    """A path as a .cmd file must spell it: cmd.exe expands %NAME% even in `rem` lines."""
    return str(path).replace("%", "%%")


def windows_launcher(prefix: Path, home: Path | None) -> bytes:
    """amicus.cmd, in the console's code page (OEM), which cmd.exe reads batch files in:
    a user folder with non-ASCII letters would be garbled in UTF-8."""
    lines = ["@echo off", f"rem {LAUNCHER_MARK}",
             f"rem Remove with: {removal_command(prefix).replace('%', '%%')}"]
    if home is not None:
        lines.append(f'if not defined AMICUS_HOME set "AMICUS_HOME={cmd_escaped(home)}"')
    lines.append(f'"{cmd_escaped(venv_python(prefix / "venv"))}" -I -X utf8 -c "{AMICUS_MAIN}" %*')
    lines.append("exit /b %ERRORLEVEL%")
    text = "\r\n".join(lines) + "\r\n"
    try:
        return text.encode("oem" if sys.platform == "win32" else "utf-8")
    except UnicodeEncodeError as error:
        raise InstallError(f"{prefix}: a folder name the console's code page cannot write "
                           f"(amicus.cmd could not run from it): choose another "
                           f"{option('--prefix')} or {option('--data-dir')}") from error


def posix_launcher(prefix: Path, home: Path | None) -> bytes:
    lines = ["#!/bin/sh", f"# {LAUNCHER_MARK}", f"# Remove with: {removal_command(prefix)}"]
    if home is not None:
        lines += [f"AMICUS_HOME=${{AMICUS_HOME:-{shlex.quote(str(home))}}}", "export AMICUS_HOME"]
    lines.append(f'exec {shlex.quote(str(prefix / "venv" / "bin" / "amicus"))} "$@"')
    return ("\n".join(lines) + "\n").encode("utf-8")


def launcher_bytes(prefix: Path, home: Path | None) -> bytes:
    """The `amicus` command; a data folder chosen at install time stays its default."""
    return windows_launcher(prefix, home) if WINDOWS else posix_launcher(prefix, home)


def stage_launcher(journal: Journal, options: Options, stage: Path,
                   home: Path | None) -> Path | None:
    """The launcher, written beside its final place and renamed there at commit (returned);
    where the bin folder lies in the prefix (Windows), inside the staged prefix (None)."""
    final = launcher_path(options.bin_dir)
    inside = final.is_relative_to(options.prefix)
    if inside:
        path = stage / final.relative_to(options.prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        journal.make_dir(options.bin_dir)
        handle, name = tempfile.mkstemp(prefix=".amicus.", dir=options.bin_dir)
        os.close(handle)
        path = journal.stage(Path(name))
    path.write_bytes(launcher_bytes(options.prefix, home))
    path.chmod(0o755)
    return None if inside else path


def write_receipt(root: Path, stage: Path, receipt: Receipt) -> None:
    """The receipt, and a copy of the installer: uninstalling does not need the bundle."""
    (stage / RECEIPT_NAME).write_text(receipt_text(receipt), encoding="utf-8")
    for name in INSTALLERS:
        if (root / name).is_file():
            shutil.copyfile(root / name, stage / name)
            (stage / name).chmod(0o644 if name.endswith(".ps1") else 0o755)


def relocate_venv(old: Path, new: Path) -> None:
    """A virtual environment's scripts name its interpreter by absolute path: point them
    from the staging folder to the final one. Binary files are left alone (Windows'
    .exe launchers: amicus.cmd runs python.exe instead)."""
    before, after = str(old).encode(), str(new).encode()
    for path in [*venv_scripts(new).iterdir(), new / "pyvenv.cfg"]:
        if path.is_symlink() or not path.is_file():
            continue
        data = path.read_bytes()
        if before in data and b"\0" not in data[:1024]:
            path.write_bytes(data.replace(before, after))


@dataclass(frozen=True)
class Staged:
    """What the staging steps produced, ready to be renamed into place."""

    stage: Path  # the prefix to be
    mstage: Path  # models/<name> to be, and where replaced ones go
    names: list[str]
    launcher: Path | None  # a temporary file beside the final launcher


def commit(journal: Journal, options: Options, models_dir: Path, staged: Staged) -> None:
    """Renames only, each one undone in reverse if a later one fails."""
    old_prefix = journal.stage(Path(f"{staged.stage}.old"))
    if options.prefix.exists():
        journal.move(options.prefix, old_prefix)
    journal.move(staged.stage, options.prefix)
    relocate_venv(staged.stage / "venv", options.prefix / "venv")
    (staged.mstage / "replaced").mkdir()
    for name in staged.names:
        if os.path.lexists(models_dir / name):
            journal.move(models_dir / name, staged.mstage / "replaced" / name)
        journal.move(staged.mstage / "models" / name, models_dir / name)
    if staged.launcher is not None:
        final = launcher_path(options.bin_dir)
        if os.path.lexists(final):
            journal.move(final, staged.mstage / "replaced-launcher")
        journal.move(staged.launcher, final)
    if WINDOWS:
        edit_user_path(path_with, str(options.bin_dir))


def summary(options: Options, models_dir: Path, names: list[str]) -> None:
    say()
    say(f"Amicus {AMICUS_VERSION} is installed.")
    on_path = WINDOWS or str(options.bin_dir) in os.environ.get("PATH", "").split(os.pathsep)
    new_terminals = " (on your PATH in new terminals)" if WINDOWS else ""
    say(f"  command:     {launcher_path(options.bin_dir)}{new_terminals}")
    say(f"  environment: {options.prefix / 'venv'}")
    say(f"  models:      {models_dir} ({' '.join(names)})")
    if not on_path:
        say(f"  note: {options.bin_dir} is not on PATH; add it, or run "
            f"{launcher_path(options.bin_dir)}")
    say(f"Remove it with: {removal_command(options.prefix)}")


def stage_all(journal: Journal, options: Options, root: Path, python: str,
              home: Path, pinned: Path | None) -> Staged:
    """Everything built in staging folders, checked by running it, nothing yet in place."""
    models_dir = home / "models"
    names = bundle_models(root)
    journal.make_dir(options.prefix.parent)
    stage = journal.stage(Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=options.prefix.parent)))
    create_environment(python, stage / "venv", root / "wheelhouse")
    report_backend(stage / "venv")
    journal.make_dir(home, 0o700)
    journal.make_dir(models_dir, 0o700)
    mstage = journal.stage(Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=models_dir)))
    stage_models(root, mstage, names)
    verify_models(stage / "venv", mstage, names)
    chat = smoke_model(root, names)
    if chat is not None:
        smoke_test(stage / "venv", mstage, chat)
    receipt = Receipt(models_dir, launcher_path(options.bin_dir), BUNDLE_NAME,
                      [str(options.bin_dir)] if WINDOWS else [],
                      {**earlier_models(read_receipt(options.prefix / RECEIPT_NAME), models_dir),
                       **{n: sha256_of(mstage / "models" / n / "manifest.json") for n in names}})
    write_receipt(root, stage, receipt)
    return Staged(stage, mstage, names, stage_launcher(journal, options, stage, pinned))


def undo(journal: Journal) -> None:
    """Roll back with Ctrl-C ignored: a second Ctrl-C must not stop the undo halfway."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        journal.rollback()
    finally:
        signal.signal(signal.SIGINT, previous)


def install(options: Options, root: Path) -> None:
    """Check, stage, commit; any failure or interruption undoes every step."""
    check_platform()
    python = find_python(options.python)
    verify_bundle(root)
    check_venv_support(python)
    home = find_data_home(options.data_dir, python, root / "wheelhouse")
    # a data folder chosen at install time is kept by the launcher; the default needs none
    pinned = home if options.data_dir or os.environ.get("AMICUS_HOME") else None
    preflight(options, home / "models", bundle_models(root))
    say(f"Installing Amicus {AMICUS_VERSION} into {options.prefix}, models into "
        f"{home / 'models'}")
    journal = Journal()
    try:
        staged = stage_all(journal, options, root, python, home, pinned)
        commit(journal, options, home / "models", staged)
    except BaseException:
        undo(journal)
        raise
    remove(staged.mstage)
    remove(Path(f"{staged.stage}.old"))
    summary(options, home / "models", staged.names)


# --- uninstall -------------------------------------------------------------------------

def remove_model(folder: Path, digest: str) -> None:
    """A model folder goes only if its manifest is the one installed: a model replaced
    since then belongs to whoever replaced it."""
    if not folder.is_dir():
        return
    manifest = folder / "manifest.json"
    if manifest.is_file() and sha256_of(manifest) == digest:
        rmtree(folder)
        say(f"removed {folder}")
    else:
        say(f"kept {folder}: it was replaced after installation")


def uninstall(prefix: Path) -> None:
    """Remove what the receipt lists; conversations and settings stay."""
    receipt = read_receipt(prefix / RECEIPT_NAME)
    if receipt is None:
        raise InstallError(f"no Amicus installation at {prefix} (no {RECEIPT_NAME}); "
                           f"pass {option('--prefix')}")
    if receipt.launcher is not None and is_our_launcher(receipt.launcher):
        receipt.launcher.unlink()
        say(f"removed {receipt.launcher}")
    for entry in receipt.path_entries:
        edit_user_path(path_without, entry)
        say(f"removed {entry} from PATH")
    for name, digest in receipt.models.items():
        remove_model(receipt.models_dir / name, digest)
    if Path.cwd().is_relative_to(prefix):  # Windows cannot delete a folder in use
        os.chdir(tempfile.gettempdir())
    rmtree(prefix)
    say(f"removed {prefix}")
    say(f"Conversations and settings in {receipt.models_dir.parent} were kept; delete that "
        "folder to remove them too.")


# --- Windows: the user's PATH ----------------------------------------------------------

def path_with(value: str, entry: str) -> str:
    """A PATH value (;-separated) with entry appended unless there (case-insensitive)."""
    entries = [e for e in value.split(";") if e]
    if entry.casefold() not in (e.casefold() for e in entries):
        entries.append(entry)
    return ";".join(entries)


def path_without(value: str, entry: str) -> str:
    return ";".join(e for e in value.split(";") if e and e.casefold() != entry.casefold())


def edit_user_path(change: Callable[[str, str], str], entry: str) -> None:
    """Change the user's PATH in the registry (path_with or path_without), as
    [Environment]::SetEnvironmentVariable does, and tell running programs (Explorer, new
    terminals) that it changed. Only Windows keeps PATH there; elsewhere nothing to do."""
    if sys.platform != "win32":
        return
    import ctypes
    import winreg

    with winreg.OpenKey(winreg.HKEY_CURRENT_USER, "Environment", 0,
                        winreg.KEY_READ | winreg.KEY_WRITE) as key:
        try:
            value, kind = winreg.QueryValueEx(key, "Path")
        except FileNotFoundError:
            value, kind = "", winreg.REG_EXPAND_SZ
        if change(value, entry) != value:
            winreg.SetValueEx(key, "Path", 0, kind, change(value, entry))
    hwnd_broadcast, wm_settingchange, smto_abortifhung = 0xFFFF, 0x1A, 0x2
    ctypes.windll.user32.SendMessageTimeoutW(
        hwnd_broadcast, wm_settingchange, 0, "Environment", smto_abortifhung, 5000, None)


# --- main ------------------------------------------------------------------------------

def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM undoes the installation as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a console that cannot show a path's letters
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminated)
    code = EXIT_FAILURE
    try:
        if options.uninstall:
            uninstall(options.prefix)
        else:
            install(options, HERE)
        code = 0
    except InstallError as error:
        warn(f"{PROG}: error: {error}")
        code = error.exit_code
    except OSError as error:  # a folder that cannot be written, a full disk
        warn(f"{PROG}: error: {error}")
    except KeyboardInterrupt:
        warn(f"{PROG}: interrupted")
        code = EXIT_INTERRUPTED
    finally:
        if code != 0 and not options.uninstall:
            warn(f"{PROG}: nothing was installed (everything staged was removed).")
    return code


if __name__ == "__main__":
    sys.exit(main())
