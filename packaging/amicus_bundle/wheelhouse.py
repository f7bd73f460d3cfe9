"""The bundle's wheelhouse: a wheel for every runtime dependency, for the target platform.

Where the wheels come from, in order of preference (a project found in an earlier source
is never taken from a later one, so a CUDA build of llama-cpp-python given with --wheel
cannot be mixed up with a CPU build of the same version):
  1. --wheel PATH and --wheelhouse DIR: wheels built elsewhere (a GPU build, a Windows
     or macOS machine's llama-cpp-python);
  2. --from-venv: the running environment's installed distributions, repacked (no
     network; this machine's platform only);
  3. the package index: `pip wheel` for this machine (llama-cpp-python compiled here, or
     taken from pip's wheel cache), `pip download --only-binary` for another platform.
Then pip itself resolves `amicus` against the wheelhouse alone, with no index and for the
target platform, exactly as the laptop's installer will; the wheels it does not pick are
dropped. A wheelhouse that passes this check installs on the laptop.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from amicus_bundle.errors import BundleError
from amicus_bundle.progress import note
from amicus_bundle.repack import repack_closure

# Top-level entries of the source tree that a wheel build never needs (copying them would
# also let stale build/ output leak into the wheel).
SOURCE_EXCLUDES = {".git", ".venv", "venv", "build", "dist", "out", "tests", "packaging",
                   ".pytest_cache", ".ruff_cache", ".hypothesis", "shared"}
# A GPU backend is a shared library of its own (headers for every backend ship always).
GPU_LIBRARY = re.compile(r"(?:^|/)(?:lib)?ggml-(cuda|metal|vulkan|hip|sycl)\.(?:so|dylib|dll)")
GPU_NAMES = {"cuda": "CUDA", "metal": "Metal", "vulkan": "Vulkan", "hip": "ROCm",
             "sycl": "SYCL"}


class WheelhouseError(BundleError):
    """The wheelhouse cannot be completed for the target."""


@dataclass(frozen=True)
class Target:
    """The laptop's platform: pip's --platform tags and Python version, or this machine."""

    platforms: tuple[str, ...] = ()
    python_version: str | None = None

    @property
    def native(self) -> bool:
        return not self.platforms and self.python_version in (None, _this_python())

    @property
    def python(self) -> str:
        return self.python_version or _this_python()

    @property
    def label(self) -> str:
        """A file-name-safe platform name: linux_x86_64, win_amd64, macosx_11_0_arm64."""
        raw = self.platforms[0] if self.platforms else sysconfig.get_platform()
        return raw.replace("-", "_").replace(".", "_")

    @property
    def os(self) -> str:
        label = self.label
        return "windows" if label.startswith("win") else \
            "macos" if label.startswith("macosx") else "linux"

    def pip_flags(self) -> list[str]:
        """pip options that make a resolution or download happen for the target."""
        if self.native:
            return ["--only-binary=:all:"]
        flags = [f"--platform={tag}" for tag in self.platforms]
        return [*flags, f"--python-version={self.python}", "--implementation=cp",
                "--only-binary=:all:"]


def _this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass
class Sources:
    wheels: list[Path] = field(default_factory=list)
    wheelhouses: list[Path] = field(default_factory=list)
    from_venv: bool = False
    no_index: bool = False
    allow_modified: bool = False


def pip(args: Sequence[str], *, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's pip; its output streams through (it is the progress of a
    slow step) unless quiet, where it is kept for the error message."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, text=True, check=False,
                            capture_output=quiet)
    if result.returncode:
        detail = (result.stderr or result.stdout or "").strip()[-3000:] if quiet else ""
        raise WheelhouseError(f"pip {args[0]} failed (exit {result.returncode})"
                              + (f":\n{detail}" if detail else ""))
    return result


def _copy_source(source: Path, dest: Path) -> Path:
    def ignore(directory: str, names: list[str]) -> set[str]:
        top = Path(directory) == source
        return {n for n in names if (top and (n in SOURCE_EXCLUDES or n.endswith(".egg-info")))
                or n == "__pycache__" or n.endswith(".pyc")}

    tree = dest / "amicus-source"
    shutil.copytree(source, tree, ignore=ignore, symlinks=True)
    return tree


def _setuptools_ok() -> bool:
    try:
        from importlib.metadata import version

        return int(version("setuptools").split(".")[0]) >= 69
    except (ImportError, ValueError, LookupError):
        return False


def build_amicus_wheel(source: Path, dest: Path, *, no_index: bool) -> Path:
    """Build Amicus's own wheel from a clean copy of its source tree."""
    with tempfile.TemporaryDirectory(prefix="amicus-wheel-") as scratch:
        tree = _copy_source(source, Path(scratch))
        isolated = not _setuptools_ok()
        if isolated and no_index:
            raise WheelhouseError("building the amicus wheel without an index needs "
                                  "setuptools>=69 in this environment (pip install it first)")
        flags = [] if isolated else ["--no-build-isolation"]
        pip(["wheel", "--no-deps", *flags, "--quiet", "--wheel-dir", str(dest), str(tree)],
            quiet=True)
    built = sorted(dest.glob("amicus-*.whl"))
    if not built:
        raise WheelhouseError("pip wheel produced no amicus wheel")
    return built[-1]


def wheel_requirements(wheel: Path) -> list[str]:
    """Requires-Dist of a wheel (markers kept): the dependencies the bundle must carry."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines()
            if line.startswith("Requires-Dist:")]


def _project(wheel: Path) -> str:
    return canonicalize_name(parse_wheel_filename(wheel.name)[0])


def _given_wheels(sources: Sources) -> list[Path]:
    given = list(sources.wheels)
    for directory in sources.wheelhouses:
        found = sorted(Path(directory).glob("*.whl"))
        if not found:
            raise WheelhouseError(f"{directory}: no wheels in it")
        given.extend(found)
    for wheel in given:
        if not wheel.is_file():
            raise WheelhouseError(f"{wheel}: no such wheel")
        _project(wheel)  # raises on a name that is not a wheel file name
    return given


def _root_requirements(amicus_wheel: Path) -> list[str]:
    """The wheel's runtime requirements whose markers hold here (extras left out)."""
    kept = []
    for text in wheel_requirements(amicus_wheel):
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            kept.append(str(requirement))
    return kept


def collect(source_tree: Path, target: Target, sources: Sources, local: Path) -> Path:
    """Put every wheel the resolution may draw on into `local`; returns Amicus's wheel."""
    local.mkdir(parents=True, exist_ok=True)
    amicus = build_amicus_wheel(source_tree, local, no_index=sources.no_index)
    note(f"built {amicus.name}")
    given = _given_wheels(sources)
    for wheel in given:
        shutil.copy2(wheel, local / wheel.name)
        note(f"given {wheel.name}")
    if sources.from_venv:
        skip = {_project(w) for w in given} | {"amicus"}
        for result in repack_closure(_root_requirements(amicus), local, skip=skip,
                                     allow_modified=sources.allow_modified):
            modified = f"  (packed as modified: {', '.join(result.modified)})" \
                if result.modified else ""
            note(f"repacked {result.wheel.name}{modified}")
    return amicus


def resolve(amicus: Path, target: Target, sources: Sources, local: Path, out: Path) -> None:
    """Fill `out` with the wheels amicus needs on the target, drawing on `local` first.
    Amicus is named by its wheel's path, never by name: another project called "amicus"
    on the index must not be resolved in its place."""
    out.mkdir(parents=True, exist_ok=True)
    index = ["--no-index"] if sources.no_index or sources.from_venv else []
    common = [*index, "--find-links", str(local), "--progress-bar", "off"]
    # Offline it is a quick copy; with an index it may compile llama-cpp-python for minutes,
    # and pip's own lines are then the progress.
    quiet = ["--quiet"] if index else []
    if target.native:  # builds what has no wheel (llama-cpp-python), or takes it from cache
        pip(["wheel", *common, *quiet, "--wheel-dir", str(out), str(amicus)])
    else:
        pip(["download", *common, *quiet, *target.pip_flags(), "--dest", str(out),
             str(amicus)])


def check(out: Path, target: Target, version: str) -> list[Path]:
    """Resolve amicus from `out` alone, offline and for the target, as the laptop will;
    drop every wheel the resolution does not use. Returns the wheels kept."""
    with tempfile.TemporaryDirectory(prefix="amicus-check-") as scratch:
        report = Path(scratch) / "report.json"
        target_dir = ["--target", str(Path(scratch) / "t")] if not target.native else []
        pip(["install", "--dry-run", "--ignore-installed", "--no-index", "--find-links",
             str(out), *target.pip_flags(), *target_dir, "--quiet", "--report", str(report),
             f"amicus=={version}"], quiet=True)
        chosen = json.loads(report.read_text(encoding="utf-8"))["install"]
    used = {Path(unquote(urlparse(item["download_info"]["url"]).path)).name for item in chosen}
    for wheel in out.iterdir():
        if wheel.name not in used:
            note(f"dropped {wheel.name} (not needed on the target)")
            wheel.unlink()
    kept = sorted(out.iterdir())
    if any(w.suffix != ".whl" for w in kept):
        raise WheelhouseError("the wheelhouse holds a source distribution; the laptop cannot "
                              "compile it")
    return kept


def assemble(source_tree: Path, target: Target, sources: Sources, out: Path) -> list[Path]:
    """The complete, checked wheelhouse for the target in `out`."""
    if sources.from_venv and not target.native:
        raise WheelhouseError("--from-venv repacks this machine's environment; it cannot "
                              f"make wheels for {target.label} / Python {target.python}")
    with tempfile.TemporaryDirectory(prefix="amicus-wheels-") as scratch:
        local = Path(scratch)
        amicus = collect(source_tree, target, sources, local)
        version = parse_wheel_filename(amicus.name)[1]
        try:
            resolve(amicus, target, sources, local, out)
            if not (out / amicus.name).is_file():  # pip wheel copies it; make sure of it
                shutil.copy2(amicus, out / amicus.name)
            return check(out, target, str(version))
        except WheelhouseError as error:
            raise WheelhouseError(f"the wheelhouse does not install amicus on "
                                  f"{target.label} / Python {target.python}: {error}\n"
                                  "(llama-cpp-python has no binary wheel on PyPI for most "
                                  "platforms: build one there, e.g. with "
                                  "packaging/gpu-build.sh, and pass it with --wheel)") from None


def llama_backend(wheel: Path) -> str:
    """Which GPU backend a llama-cpp-python wheel was built with, from its libraries."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    found = {m.group(1) for name in names if (m := GPU_LIBRARY.search(name.lower()))}
    return "+".join(GPU_NAMES[key] for key in sorted(found)) if found else "CPU"


# Entries of llama.cpp's system info that are not CPU instruction sets.
NOT_ISA = {"LLAMAFILE", "OPENMP", "REPACK", "ACCELERATE", "KLEIDIAI", "AARCH64_REPACK"}
PROBE = ("import sys; sys.path.insert(0, sys.argv[1]); import llama_cpp; "
         "print(llama_cpp.llama_print_system_info().decode())")


def llama_cpu_features(wheel: Path) -> list[str] | None:
    """The CPU instruction sets a llama-cpp-python wheel for this machine was compiled to
    require (llama.cpp's system info reports compile-time features), or None when it
    cannot be loaded here. A wheel llama.cpp compiled for its build machine
    (GGML_NATIVE) requires that CPU's newest extensions, e.g. AVX-512."""
    with tempfile.TemporaryDirectory(prefix="amicus-llama-") as scratch:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(scratch)
        result = subprocess.run([sys.executable, "-I", "-c", PROBE, scratch], text=True,
                                capture_output=True, check=False, timeout=120)
    if result.returncode:
        return None
    cpu = result.stdout.split("CPU :", 1)[-1].split("\n", 1)[0]
    features = [part.split("=")[0].strip() for part in cpu.split("|") if "= 1" in part]
    return [name for name in features if name and name not in NOT_ISA]
