"""The headless core never imports textual, and nothing at run time imports torch & co."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADLESS = ["converters", "app/engine", "app/assistants", "app/store", "app/documents"]
# tokenizers and sentencepiece are run-time dependencies: the converter checks tokenizer
# parity against them.
REFERENCE_ONLY = {"torch", "transformers", "peft", "safetensors", "accelerate"}


def _imports(path: Path) -> set[str]:
    """Top-level package names imported anywhere in a file, lazy imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(*folders: str) -> list[Path]:
    files = [p for folder in folders for p in (ROOT / folder).rglob("*.py")]
    assert files, f"no sources under {folders}"
    return files


@pytest.mark.parametrize("path", _sources(*HEADLESS), ids=lambda p: str(p.relative_to(ROOT)))
def test_headless_core_never_imports_textual(path):
    assert "textual" not in _imports(path)


@pytest.mark.parametrize("path", _sources("app", "converters"),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_code_never_imports_reference_libraries(path):
    assert not (_imports(path) & REFERENCE_ONLY)


def test_converters_never_import_app():
    for path in _sources("converters"):
        assert "app" not in _imports(path), path


def test_importing_the_core_loads_no_textual_at_all():
    """Catches indirect imports too: load every headless module in a fresh interpreter."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in _sources(*HEADLESS)
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "{'textual', 'torch', 'transformers', 'peft'})\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == ""


def _full_imports(path: Path) -> set[str]:
    """Dotted module names imported anywhere in a file ("from a.b import c" gives a.b and
    a.b.c), lazy imports included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


PIPELINE = [p for p in _sources("converters")
            if "synthetic" not in p.relative_to(ROOT / "converters").parts]


@pytest.mark.parametrize("path", PIPELINE, ids=lambda p: str(p.relative_to(ROOT)))
def test_pipeline_modules_never_import_the_fixtures(path):
    """converters/synthetic is the only home of fixtures: production depends on none."""
    assert not any(name == "converters.synthetic" or name.startswith("converters.synthetic.")
                   for name in _full_imports(path))


def test_importing_the_pipeline_loads_no_fixture_at_all():
    """Indirect imports too: the whole pipeline in a fresh interpreter."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in PIPELINE
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(','.join(sorted(n for n in sys.modules if n.startswith('converters.synthetic'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == ""


def test_the_fixture_check_would_catch_an_import(tmp_path):
    """The AST check sees both spellings of an import of the fixtures."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from converters import synthetic\n")
    assert "converters.synthetic" in _full_imports(module)
    module.write_text("import converters.synthetic.demo as d\n")
    assert "converters.synthetic.demo" in _full_imports(module)
