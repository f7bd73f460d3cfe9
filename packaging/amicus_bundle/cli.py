"""`python packaging/bundle.py --models NAME...`: build one offline installation archive."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from amicus_bundle import archive, wheelhouse
from amicus_bundle.errors import BundleError
from amicus_bundle.models import BundleModel, select_models
from amicus_bundle.progress import Steps, human_size, note

PACKAGING = Path(__file__).resolve().parents[1]
SOURCE_TREE = PACKAGING.parent
AVX512_WARNING = (
    "WARNING: this llama-cpp-python was compiled for a CPU with AVX-512 (llama.cpp builds "
    "for the build machine's own CPU unless GGML_NATIVE=OFF). Most laptops lack it and "
    "would stop on an illegal instruction (the installer then refuses, installing nothing). "
    "Build a portable wheel with `packaging/gpu-build.sh cpu` and pass it with --wheel.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bundle.py",
        description="Build one archive that installs Amicus and the named models on a "
                    "laptop with no network: a wheelhouse of every runtime dependency for "
                    "the target platform (llama-cpp-python's compiled wheel included), the "
                    "models, SHA256SUMS and the installer (install.py, with the launchers "
                    "install.sh and install.ps1).",
        epilog="examples:\n"
               "  bundle.py --models moral-audit sentencing\n"
               "  bundle.py --models all --from-venv            # offline: repack this venv\n"
               "  bundle.py --models general --wheel dist-gpu/cuda/llama_cpp_python-*.whl\n"
               "  bundle.py --models all --platform win_amd64 --python-version 3.11 \\\n"
               "            --wheel llama_cpp_python-0.3.36-cp311-cp311-win_amd64.whl\n"
               "exit status: 0 built, 1 failure, 2 bad arguments",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME",
                        help="installed models to carry, or `all`")
    parser.add_argument("--models-dir", type=Path, metavar="DIR",
                        help="where the models are installed (default: Amicus's data "
                             "directory, $AMICUS_HOME/models if set)")
    parser.add_argument("--out", type=Path, default=SOURCE_TREE / "dist", metavar="DIR",
                        help="where the archive goes (default: dist/)")
    parser.add_argument("--format", choices=("tar.gz", "zip"),
                        help="archive format (default: zip for Windows, else tar.gz)")
    parser.add_argument("--platform", action="append", default=[], metavar="TAG",
                        help="target platform tag for pip, e.g. win_amd64, "
                             "macosx_11_0_arm64, manylinux_2_28_x86_64 (repeatable; "
                             "default: this machine)")
    parser.add_argument("--python-version", metavar="X.Y",
                        help="the laptop's Python (default: this interpreter's)")
    parser.add_argument("--wheel", action="append", default=[], type=Path, metavar="PATH",
                        help="a wheel built elsewhere, e.g. a CUDA llama-cpp-python "
                             "(repeatable; wins over any other source of that project)")
    parser.add_argument("--wheelhouse", action="append", default=[], type=Path,
                        metavar="DIR", help="a folder of wheels built or downloaded elsewhere")
    parser.add_argument("--from-venv", action="store_true",
                        help="no network: repack the dependencies installed in this "
                             "environment (this machine's platform only)")
    parser.add_argument("--no-index", action="store_true",
                        help="never contact a package index")
    parser.add_argument("--allow-modified", action="store_true",
                        help="with --from-venv: pack installed files that differ from their "
                             "RECORD as they are now (they are named) instead of refusing")
    parser.add_argument("--compression-level", type=int, default=1, choices=range(0, 10),
                        metavar="0-9", help="gzip level (default 1: wheels and GGUF files "
                                            "barely compress, higher levels only cost time)")
    return parser


@dataclass(frozen=True)
class Built:
    archive: Path
    sha256: str
    wheels: dict[str, int]  # file name: size
    models: list[BundleModel]
    unpacked: int
    backend: str  # the llama-cpp-python build's GPU backend, or CPU
    cpu_features: list[str] | None  # instruction sets llama.cpp was compiled to need


def _installer_text(name: str, values: dict[str, str]) -> str:
    text = (PACKAGING / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _bundle_name(version: str, target: wheelhouse.Target, backend: str) -> str:
    gpu = "" if backend == "CPU" else f"-{backend.lower().replace('+', '-')}"
    return f"amicus-{version}-{target.label}-py{target.python.replace('.', '')}{gpu}"


def _llama_wheel(wheels: list[Path]) -> Path:
    for wheel in wheels:
        if _is_llama(wheel.name):
            return wheel
    raise wheelhouse.WheelhouseError("the wheelhouse has no llama-cpp-python wheel")


def _is_llama(file_name: str) -> bool:
    return canonicalize_name(parse_wheel_filename(file_name)[0]) == "llama-cpp-python"


def _info(version: str, target: wheelhouse.Target, wheels: list[Path],
          models: list[BundleModel], backend: str) -> dict[str, object]:
    return {
        "format": 1, "amicus_version": version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "target": {"os": target.os, "platform": target.label, "python": target.python,
                   "pip_platforms": list(target.platforms)},
        "llama_cpp_backend": backend,
        "wheels": [w.name for w in wheels],
        "models": [{"name": m.name, "demo": m.demo, "quantization": m.quantization,
                    "size": m.size} for m in models],
    }


@dataclass(frozen=True)
class House:
    """The checked wheelhouse, and what it says about the bundle."""

    wheels: list[Path]
    version: str  # Amicus's
    backend: str
    cpu_features: list[str] | None


def _models_step(steps: Steps, args: argparse.Namespace) -> list[BundleModel]:
    steps.start(f"models: {', '.join(args.models)} (checking their checksums)")
    models = select_models(args.models, args.models_dir)
    for model in models:
        demo = "  (demo weights)" if model.demo else ""
        note(f"{model.name:<14} {human_size(model.size):>9}{demo}")
    return models


def _wheelhouse_step(steps: Steps, args: argparse.Namespace, target: wheelhouse.Target,
                     out: Path) -> House:
    steps.start(f"wheelhouse for {target.label}, Python {target.python}")
    sources = wheelhouse.Sources(list(args.wheel), list(args.wheelhouse), args.from_venv,
                                 args.no_index, args.allow_modified)
    wheels = wheelhouse.assemble(SOURCE_TREE, target, sources, out)
    amicus = next(w for w in wheels if w.name.startswith("amicus-"))
    llama = _llama_wheel(wheels)
    backend = wheelhouse.llama_backend(llama)
    note(f"{len(wheels)} wheels, llama-cpp-python build: {backend}")
    # another platform's libraries cannot be loaded here to ask
    features = wheelhouse.llama_cpu_features(llama) if target.native else None
    if features is not None:
        note(f"llama.cpp needs these CPU features on the laptop: {' '.join(features)}")
    return House(wheels, str(parse_wheel_filename(amicus.name)[1]), backend, features)


def _stage_step(steps: Steps, root: Path, house: House, models: list[BundleModel],
                target: wheelhouse.Target) -> None:
    steps.start(f"staging {root.name}")
    values = {"AMICUS_VERSION": house.version, "PYTHON_VERSION": target.python,
              "BUNDLE_NAME": root.name, "TARGET_OS": target.os}
    archive.stage(root, house.wheels, models,
                  {name: _installer_text(name, values) for name in archive.INSTALLERS})
    info = _info(house.version, target, house.wheels, models, house.backend)
    archive.write_info(root, {**info, "llama_cpu_features": house.cpu_features})
    steps.start("checksums (SHA256SUMS)")
    note(f"{archive.write_checksums(root)} files")


def build(args: argparse.Namespace) -> Built:
    target = wheelhouse.Target(tuple(args.platform), args.python_version)
    fmt = args.format or ("zip" if target.os == "windows" else "tar.gz")
    steps = Steps(5)
    models = _models_step(steps, args)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".amicus-bundle-", dir=args.out) as scratch:
        house = _wheelhouse_step(steps, args, target, Path(scratch) / "wheelhouse")
        root = Path(scratch) / _bundle_name(house.version, target, house.backend)
        _stage_step(steps, root, house, models, target)
        steps.start(f"archive ({fmt})")
        path = args.out / f"{root.name}.{fmt}"
        archive.write_archive(root, path, fmt, args.compression_level)
        steps.done()
        unpacked = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        wheel_sizes = {w.name: w.stat().st_size for w in house.wheels}
    digest = archive.sha256_file(path)
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n",
                                                      encoding="utf-8")
    return Built(path, digest, wheel_sizes, models, unpacked, house.backend,
                 house.cpu_features)


def summary(built: Built) -> str:
    wheels = sum(built.wheels.values())
    llama = next(name for name in built.wheels if _is_llama(name))
    rows = [("wheelhouse", f"{len(built.wheels)} wheels", wheels),
            ("  of which llama-cpp-python", f"{parse_wheel_filename(llama)[1]}, "
             f"{built.backend} build", built.wheels[llama])]
    rows += [(f"models/{m.name}", f"{m.quantization}{', demo' if m.demo else ''}", m.size)
             for m in built.models]
    model_bytes = sum(m.size for m in built.models)
    rows += [("installers, checksums", "", built.unpacked - wheels - model_bytes),
             ("total unpacked", "", built.unpacked),
             ("archive", built.archive.name, built.archive.stat().st_size)]
    lines = ["", "Bundle sizes:"]
    lines += [f"  {label:<28} {detail:<48.48} {human_size(size):>9}" for label, detail, size
              in rows]
    root = built.archive.name.removesuffix(".tar.gz").removesuffix(".zip")
    unpack = f"tar xzf {built.archive.name} && {root}/install.sh" \
        if built.archive.suffix == ".gz" else \
        f"Extract All, then: powershell -ExecutionPolicy Bypass -File {root}\\install.ps1"
    if built.cpu_features and any(f.startswith("AVX512") for f in built.cpu_features):
        lines += ["", textwrap.fill(AVX512_WARNING, width=90)]
    lines += ["", f"Archive: {built.archive}",
              f"sha256:  {built.sha256}  (also in {built.archive.name}.sha256)",
              f"On the laptop: {unpack}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.allow_modified and not args.from_venv:
        parser.error("--allow-modified only applies with --from-venv")
    if args.from_venv and not wheelhouse.Target(tuple(args.platform), args.python_version).native:
        parser.error("--from-venv repacks this machine's environment: it makes wheels for "
                     "this platform and Python only")
    try:
        built = build(args)
    except BundleError as error:
        print(f"bundle: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("bundle: interrupted; no archive was written", file=sys.stderr)
        return 130
    print(summary(built), flush=True)
    return 0
