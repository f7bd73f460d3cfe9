"""Turn an installed distribution back into the wheel it was installed from.

A preparing machine that has a working environment but no package index (or the test
suite, which never uses the network) can still build a bundle: every file pip installed
is listed, with its sha256, in the distribution's dist-info RECORD, and the dist-info keeps
the wheel's own METADATA and WHEEL (with its tags). Console scripts are left out: pip
writes them again from entry_points.txt on the laptop. Byte-compiled files are left out:
pip compiles them again. A file that no longer matches its RECORD hash is refused, so a
wheel never carries a locally edited dependency.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import stat
import sysconfig
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from amicus_bundle.errors import BundleError

# Written by pip at install time; a wheel never holds them (RECORD is written anew).
INSTALL_ONLY = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
# Fixed timestamps: the same environment repacks into byte-identical wheels, so a bundle's
# checksums only change when something in it really changed.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
SCRIPT_GROUPS = ("console_scripts", "gui_scripts")
CHANGED = "changed since it was installed (hash differs from RECORD)"


class RepackError(BundleError):
    """The installed files cannot be turned back into a faithful wheel."""


@dataclass(frozen=True)
class Repacked:
    wheel: Path
    modified: tuple[str, ...]  # files packed as they are now, not as RECORD says


@dataclass(frozen=True)
class Member:
    name: str  # the path inside the wheel
    source: Path
    mode: int
    shebang: bool = False  # a script whose interpreter line becomes `#!python` again


def wheel_name(name: str) -> str:
    """The distribution name as wheel file names spell it (PEP 427 / 491)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _dist_info(dist: metadata.Distribution) -> Path:
    for path in dist.files or []:
        parts = PurePosixPath(str(path)).parts
        if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
            return Path(str(dist.locate_file(path))).parent
    raise RepackError(f"{dist.metadata['Name']}: no dist-info with a RECORD (installed by "
                      "something other than pip, e.g. a distribution package?)")


def _refuse_editable(dist: metadata.Distribution, info: Path) -> None:
    direct_url = info / "direct_url.json"
    if direct_url.is_file() and '"editable": true' in direct_url.read_text(encoding="utf-8"):
        raise RepackError(f"{dist.metadata['Name']} is an editable install of a source tree; "
                          "build its wheel with `pip wheel --no-deps` instead")


def _wheel_tags(info: Path) -> str:
    """The wheel's compressed tag set, from the dist-info's WHEEL file: Tag lines
    cp311-cp311-manylinux_2_27_x86_64 and ..._2_28_x86_64 give
    `cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64`."""
    lines = (info / "WHEEL").read_text(encoding="utf-8").splitlines()
    tags = [line.split(":", 1)[1].strip() for line in lines if line.startswith("Tag:")]
    if not tags:
        raise RepackError(f"{info / 'WHEEL'}: lists no Tag")
    parts: list[list[str]] = [[], [], []]
    for tag in tags:
        for index, part in enumerate(tag.split("-")):
            if part not in parts[index]:
                parts[index].append(part)
    return "-".join(".".join(values) for values in parts)


def _record_rows(info: Path) -> list[tuple[str, str]]:
    with open(info / "RECORD", encoding="utf-8", newline="") as handle:
        return [(row[0], row[1] if len(row) > 1 else "") for row in csv.reader(handle) if row]


def _script_names(dist: metadata.Distribution) -> set[str]:
    return {entry.name for entry in dist.entry_points if entry.group in SCRIPT_GROUPS}


def _outside_member(source: Path, data_dir: str, dist: metadata.Distribution) -> str | None:
    """Where a file installed outside site-packages goes in the wheel (its .data folder),
    or None for a console script pip generates again."""
    paths = sysconfig.get_paths()
    scripts, data = Path(paths["scripts"]), Path(paths["data"])
    headers = data / "include" / "site"
    if source.parent == scripts:
        names = _script_names(dist)
        stem = source.name.removesuffix(".exe").removesuffix("-script.py")
        return None if stem in names else f"{data_dir}/scripts/{source.name}"
    if source.is_relative_to(headers):  # include/site/pythonX.Y/<dist>/<header>
        inner = source.relative_to(headers).parts[2:]
        return f"{data_dir}/headers/{'/'.join(inner)}"
    if source.is_relative_to(data):
        return f"{data_dir}/data/{source.relative_to(data).as_posix()}"
    raise RepackError(f"{dist.metadata['Name']}: {source} is outside this environment")


def _members(dist: metadata.Distribution, info: Path, data_dir: str,
             allow_modified: bool) -> tuple[list[Member], list[str]]:
    """The wheel's members, and the files packed although they differ from RECORD."""
    site = info.parent
    members, problems, modified = [], [], []
    for path, digest in _record_rows(info):
        pure = PurePosixPath(path)
        if "__pycache__" in pure.parts or pure.suffix == ".pyc":
            continue
        if pure.parent.name == info.name and pure.name in INSTALL_ONLY:
            continue
        source = Path(os.path.normpath(site / path))
        name = (_outside_member(source, data_dir, dist) if pure.parts[0] == ".."
                else pure.as_posix())
        if name is None:
            continue
        problem = _check(source, digest)
        if problem == CHANGED and allow_modified:
            modified.append(path)
        elif problem:
            problems.append(f"{path}: {problem}")
            continue
        members.append(Member(name, source, source.stat().st_mode,
                              shebang=name.startswith(f"{data_dir}/scripts/")))
    if problems:
        shown = "\n  ".join(problems[:10])
        hint = "" if allow_modified else (
            "\n(reinstall it, or pass --allow-modified to pack the files as they are now)")
        raise RepackError(f"{dist.metadata['Name']} {dist.version}: installed files differ from "
                          f"its RECORD ({len(problems)}):\n  {shown}{hint}")
    return members, modified


def _check(source: Path, digest: str) -> str | None:
    if not source.is_file():
        return "missing"
    if not digest:
        return None
    algorithm, _, expected = digest.partition("=")
    actual = _digest(source.read_bytes(), algorithm)
    return None if actual == expected else CHANGED


def _digest(data: bytes, algorithm: str = "sha256") -> str:
    raw = hashlib.new(algorithm, data).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _content(member: Member) -> bytes:
    data = member.source.read_bytes()
    if member.shebang and data.startswith(b"#!") and b"python" in data.split(b"\n", 1)[0]:
        # a wheel's scripts say `#!python`; pip writes the laptop's interpreter there
        data = b"#!python\n" + data.split(b"\n", 1)[1]
    return data


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = (stat.S_IFREG | stat.S_IMODE(mode)) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def repack(dist: metadata.Distribution, dest: Path, *, allow_modified: bool = False) -> Repacked:
    """Write `dist` as a wheel into `dest`. A file that differs from RECORD is refused
    unless `allow_modified` (then it is packed as it is now, and named in the result)."""
    info = _dist_info(dist)
    _refuse_editable(dist, info)
    tags = _wheel_tags(info)
    name, version = wheel_name(dist.metadata["Name"]), dist.version.replace("-", "_")
    # the .data folder is named like the dist-info the original wheel had
    members, modified = _members(dist, info, info.name.removesuffix(".dist-info") + ".data",
                                 allow_modified)
    # dist-info last, as wheel builders write it, so tools that stream a wheel meet it late
    members.sort(key=lambda m: (m.name.startswith(info.name + "/"), m.name))
    record_name = f"{info.name}/RECORD"
    target = dest / f"{name}-{version}-{tags}.whl"
    partial = target.with_name(target.name + ".partial")
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(partial, "w") as wheel:
        for member in members:
            data = _content(member)
            wheel.writestr(_zip_info(member.name, member.mode), data)
            writer.writerow([member.name, f"sha256={_digest(data)}", len(data)])
        writer.writerow([record_name, "", ""])
        wheel.writestr(_zip_info(record_name, 0o644), record.getvalue())
    partial.replace(target)
    return Repacked(target, tuple(modified))


def repack_closure(roots: list[str], dest: Path, *, skip: set[str] = frozenset(),
                   allow_modified: bool = False) -> list[Repacked]:
    """Repack every installed distribution the roots need at run time, except `skip`
    (normalized names: amicus itself is built from its source tree instead)."""
    from amicus_bundle.requirements import runtime_closure

    dest.mkdir(parents=True, exist_ok=True)
    return [repack(dist, dest, allow_modified=allow_modified)
            for name, dist in runtime_closure(roots).items() if name not in skip]
