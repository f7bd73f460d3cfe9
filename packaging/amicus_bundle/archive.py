"""Lay out the bundle, checksum every file, and write the one archive.

Layout (the installers rely on it):
    SHA256SUMS      sha256 of every other file, in `sha256sum -c` format
    bundle.json     what the bundle is for (platform, Python, models) and its file count
    install.py      the installer (standard library only), for every platform
    install.sh, install.ps1   launchers that find a Python and run install.py
    wheelhouse/*.whl
    models/<name>/  GGUF, Modelfile, manifest.json
SHA256SUMS and bundle.json come first in the archive: an archive cut short loses files at
its end, which SHA256SUMS then names as missing; bundle.json's file count catches a
SHA256SUMS that is itself cut short.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from amicus_bundle.models import BundleModel
from amicus_bundle.progress import ByteProgress

SUMS_NAME = "SHA256SUMS"
INFO_NAME = "bundle.json"
INSTALLERS = ("install.py", "install.sh", "install.ps1")
FIRST = (SUMS_NAME, INFO_NAME, *INSTALLERS)
EXECUTABLE = {"install.py", "install.sh"}
STORED_SUFFIXES = {".whl", ".gguf"}  # already compressed, or nearly incompressible
CHUNK = 1 << 20


def _place(source: Path, dest: Path) -> None:
    """A hard link where possible: staging multi-GB models costs no disk and no time."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def stage(root: Path, wheels: list[Path], models: list[BundleModel],
          installers: dict[str, str]) -> None:
    for wheel in wheels:
        _place(wheel, root / "wheelhouse" / wheel.name)
    for model in models:
        for name in model.files:
            _place(model.directory / name, root / "models" / model.name / name)
    for name, text in installers.items():
        path = root / name
        # PowerShell on Windows wants CRLF; sh and Python read LF
        path.write_text(text, encoding="utf-8", newline="\r\n" if name.endswith(".ps1") else "\n")
        path.chmod(0o755 if name in EXECUTABLE else 0o644)


def relative_files(root: Path) -> list[str]:
    """Every file under root as a POSIX path, in archive order."""
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    first = [name for name in FIRST if name in found]
    return first + [name for name in found if name not in first]


def write_info(root: Path, info: dict[str, Any]) -> None:
    """bundle.json, with the number of files SHA256SUMS will list (itself excluded)."""
    others = [n for n in relative_files(root) if n not in (SUMS_NAME, INFO_NAME)]
    info = {**info, "file_count": len(others) + 1}
    (root / INFO_NAME).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n",
                                  encoding="utf-8")


def sha256_file(path: Path, progress: ByteProgress | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress.advance(len(chunk))
    return digest.hexdigest()


def write_checksums(root: Path) -> int:
    """SHA256SUMS over every file but itself; returns how many files it lists."""
    names = [n for n in relative_files(root) if n != SUMS_NAME]
    progress = ByteProgress(sum((root / n).stat().st_size for n in names), "checksums")
    lines = [f"{sha256_file(root / name, progress)}  {name}\n" for name in names]
    progress.close()
    (root / SUMS_NAME).write_text("".join(lines), encoding="utf-8", newline="\n")
    return len(names)


class _Counting:
    """A file object that reports the bytes read through it (tarfile pulls data)."""

    def __init__(self, handle: BinaryIO, progress: ByteProgress) -> None:
        self._handle, self._progress = handle, progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._progress.advance(len(data))
        return data


def _tar_info(tar: tarfile.TarFile, path: Path, arcname: str) -> tarfile.TarInfo:
    info = tar.gettarinfo(str(path), arcname)
    info.uid = info.gid = 0  # the preparing machine's user names mean nothing on a laptop
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() or path.name in EXECUTABLE else 0o644
    return info


def _write_tar(root: Path, prefix: str, names: list[str], partial: Path, level: int,
               progress: ByteProgress) -> None:
    with tarfile.open(partial, "w:gz", compresslevel=level, format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_tar_info(tar, root, prefix))
        added: set[str] = set()
        for name in names:
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):  # each folder once, before its files
                directory = "/".join(parts[:depth])
                if directory not in added:
                    added.add(directory)
                    tar.addfile(_tar_info(tar, root / directory, f"{prefix}/{directory}"))
            with open(root / name, "rb") as handle:
                tar.addfile(_tar_info(tar, root / name, f"{prefix}/{name}"),
                            _Counting(handle, progress))


def _write_zip(root: Path, prefix: str, names: list[str], partial: Path, level: int,
               progress: ByteProgress) -> None:
    """Wheels and GGUF files stored as they are; only small text files are deflated (so
    `level`, for tar.gz, does not matter here)."""
    with zipfile.ZipFile(partial, "w", allowZip64=True) as archive:
        for name in names:
            path = root / name
            stored = path.suffix in STORED_SUFFIXES
            info = zipfile.ZipInfo.from_file(path, f"{prefix}/{name}")
            mode = 0o755 if name in EXECUTABLE else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                    progress.advance(len(chunk))


def write_archive(root: Path, archive: Path, fmt: str, level: int) -> None:
    """The archive appears under its final name only once complete."""
    names = relative_files(root)
    progress = ByteProgress(sum((root / n).stat().st_size for n in names), "archive")
    partial = archive.with_name(f".{archive.name}.partial")
    writer = _write_zip if fmt == "zip" else _write_tar
    try:
        writer(root, root.name, names, partial, level, progress)
        progress.close()
        partial.replace(archive)
    finally:
        partial.unlink(missing_ok=True)
