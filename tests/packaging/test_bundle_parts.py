"""The bundle builder's parts: repacking installed distributions into wheels, the
archive layout and checksums, and recognising a GPU build of llama-cpp-python."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from amicus_bundle import archive
from amicus_bundle.models import BundleModel
from amicus_bundle.repack import RepackError, repack
from amicus_bundle.wheelhouse import llama_backend

from tests.packaging.conftest import PACKAGING


def _record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
        b"=").decode()


def _fake_install(site: Path, files: dict[str, bytes]) -> metadata.Distribution:
    """A distribution as pip leaves it in site-packages: files, dist-info, RECORD."""
    info = site / "demo_pkg-1.2.dist-info"
    info.mkdir(parents=True)
    written = {**files,
               f"{info.name}/METADATA": b"Metadata-Version: 2.1\nName: demo-pkg\nVersion: 1.2\n",
               f"{info.name}/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\n"
                                     b"Tag: py3-none-any\n",
               f"{info.name}/entry_points.txt": b"[console_scripts]\ndemo = demo_pkg:main\n",
               f"{info.name}/INSTALLER": b"pip\n"}
    rows = []
    for name, data in written.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_bytes(data)
        rows.append([name, _record_digest(data), str(len(data))])
    rows += [["demo_pkg/__pycache__/__init__.cpython-311.pyc", "", ""],
             [f"{info.name}/RECORD", "", ""]]
    (site / "demo_pkg/__pycache__").mkdir()
    (site / "demo_pkg/__pycache__/__init__.cpython-311.pyc").write_bytes(b"compiled")
    with open(info / "RECORD", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return metadata.PathDistribution(info)


def _wheel_record(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as archive_file:
        record = archive_file.read("demo_pkg-1.2.dist-info/RECORD").decode()
        for name, digest, _ in csv.reader(io.StringIO(record)):
            if digest:
                assert _record_digest(archive_file.read(name)) == digest, name
        return {row[0]: row[1] for row in csv.reader(io.StringIO(record))}


def test_repack_rebuilds_the_wheel_from_the_installed_files(tmp_path):
    files = {"demo_pkg/__init__.py": b"def main():\n    return 0\n",
             "demo_pkg/data/table.json": b"{}"}
    dist = _fake_install(tmp_path / "site", files)
    result = repack(dist, tmp_path)
    assert result.wheel.name == "demo_pkg-1.2-py3-none-any.whl"
    assert result.modified == ()
    record = _wheel_record(result.wheel)
    assert set(record) == {"demo_pkg/__init__.py", "demo_pkg/data/table.json",
                           "demo_pkg-1.2.dist-info/METADATA", "demo_pkg-1.2.dist-info/WHEEL",
                           "demo_pkg-1.2.dist-info/entry_points.txt",
                           "demo_pkg-1.2.dist-info/RECORD"}  # no .pyc, no INSTALLER
    with zipfile.ZipFile(result.wheel) as wheel:
        assert wheel.read("demo_pkg/__init__.py") == files["demo_pkg/__init__.py"]
        assert wheel.namelist()[-1] == "demo_pkg-1.2.dist-info/RECORD"
    (tmp_path / "again").mkdir()
    again = repack(dist, tmp_path / "again")
    assert again.wheel.read_bytes() == result.wheel.read_bytes()  # reproducible


def test_repack_refuses_an_installed_file_edited_since(tmp_path):
    dist = _fake_install(tmp_path / "site", {"demo_pkg/__init__.py": b"x = 1\n"})
    (tmp_path / "site" / "demo_pkg" / "__init__.py").write_bytes(b"x = 2\n")
    with pytest.raises(RepackError, match=r"(?s)demo_pkg/__init__\.py: changed.*--allow-modified"):
        repack(dist, tmp_path)
    result = repack(dist, tmp_path, allow_modified=True)
    assert result.modified == ("demo_pkg/__init__.py",)
    with zipfile.ZipFile(result.wheel) as wheel:
        assert wheel.read("demo_pkg/__init__.py") == b"x = 2\n"


def test_repack_refuses_a_missing_file(tmp_path):
    dist = _fake_install(tmp_path / "site", {"demo_pkg/__init__.py": b"x = 1\n"})
    (tmp_path / "site" / "demo_pkg" / "__init__.py").unlink()
    with pytest.raises(RepackError, match="missing"):
        repack(dist, tmp_path, allow_modified=True)


def _small_bundle(tmp_path: Path) -> Path:
    model_dir = tmp_path / "installed" / "tiny"
    model_dir.mkdir(parents=True)
    (model_dir / "manifest.json").write_text("{}")
    (model_dir / "tiny.Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(range(256)) * 40)
    wheel = tmp_path / "tiny-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK-wheel")
    model = BundleModel("tiny", model_dir, ("manifest.json", "tiny.Q4_K_M.gguf"), 0, True,
                        "Q4_K_M")
    root = tmp_path / "stage" / "amicus-test"
    installers = {"install.py": "print()\n", "install.sh": "#!/bin/sh\n", "install.ps1": "x\n"}
    archive.stage(root, [wheel], [model], installers)
    archive.write_info(root, {"format": 1})
    archive.write_checksums(root)
    return root


def test_checksums_cover_every_file_and_the_count_is_recorded(tmp_path):
    root = _small_bundle(tmp_path)
    listed = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == digest
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert set(listed) == on_disk - {"SHA256SUMS"}
    assert json.loads((root / "bundle.json").read_text())["file_count"] == len(listed)
    assert (root / "install.sh").stat().st_mode & 0o111
    assert (root / "install.py").stat().st_mode & 0o111
    assert (root / "install.ps1").read_bytes() == b"x\r\n"  # Windows PowerShell's line ends
    assert (root / "install.py").read_bytes() == b"print()\n"


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_archive_puts_checksums_first_and_appears_only_when_complete(tmp_path, fmt):
    root = _small_bundle(tmp_path)
    out = tmp_path / f"amicus-test.{fmt}"
    archive.write_archive(root, out, fmt, level=1)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    if fmt == "zip":
        with zipfile.ZipFile(out) as zipped:
            infos = zipped.infolist()
            names = [i.filename for i in infos]
            gguf = next(i for i in infos if i.filename.endswith(".gguf"))
            assert gguf.compress_type == zipfile.ZIP_STORED
            for script in ("install.sh", "install.py"):
                info = next(i for i in infos if i.filename.endswith(script))
                assert (info.external_attr >> 16) & 0o111
    else:
        with tarfile.open(out) as tar:
            members = tar.getmembers()
            names = [m.name for m in members if m.isfile()]
            assert all(m.uid == 0 and m.uname == "" for m in members)
    expected = ["SHA256SUMS", "bundle.json", "install.py", "install.sh", "install.ps1"]
    assert names[:5] == [f"amicus-test/{n}" for n in expected]


def _wheel_with(tmp_path: Path, names: list[str]) -> Path:
    path = tmp_path / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name in names:
            wheel.writestr(name, b"")
    return path


def test_the_gpu_backend_is_read_from_the_wheels_libraries(tmp_path):
    headers = ["include/ggml-cuda.h", "include/ggml-metal.h", "include/ggml-vulkan.h"]
    cpu = [*headers, "llama_cpp/lib/libggml-cpu.so", "llama_cpp/lib/libllama.so"]
    assert llama_backend(_wheel_with(tmp_path, cpu)) == "CPU"
    for library, backend in (("libggml-cuda.so", "CUDA"), ("ggml-vulkan.dll", "Vulkan"),
                             ("libggml-metal.dylib", "Metal")):
        wheel = _wheel_with(tmp_path, [*cpu, f"llama_cpp/lib/{library}"])
        assert llama_backend(wheel) == backend


def test_packaging_folder_is_not_a_package():
    """packaging/__init__.py would shadow the PyPI `packaging` library (used by pip and by
    the bundle builder) wherever the repository root is on sys.path."""
    assert not (PACKAGING / "__init__.py").exists()
    import packaging

    assert packaging.__file__ is not None  # a regular package, not our folder's namespace
    assert PACKAGING not in Path(packaging.__file__).resolve().parents
