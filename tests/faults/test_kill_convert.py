"""`amicus convert` killed with SIGKILL at every step (merge, GGUF write, quantize, verify,
the final renames) and at random moments, into a folder that already holds an earlier
conversion: no file under a final name is ever partial, a manifest never vouches for files
that do not match it, an earlier set is untouched unless the kill came during the renames,
and rerunning the same command completes and sweeps what the killed runs left."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from app.cli import main
from converters.outputs.manifest import sha256_file
from converters.synthetic import checkpoints as synthetic
from tests.faults.killing import amicus_env, kill_after, kill_at, run
from tests.tools.fuzzing import FUZZ_LONG_FACTOR, LONG

STEPS = ["merge", "write", "quantize", "verify", "rename"]
RANDOM_KILLS = FUZZ_LONG_FACTOR if LONG else 1


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("kill-convert")
    base = synthetic.build_qwen3(root / "base", tied=True).path
    adapter = synthetic.build_adapter(root / "lora", base, synthetic.ADAPTER_KINDS["lora"])
    out = root / "out"
    args = ["convert", "--base", str(base), "--adapter", str(adapter), "--name", "m",
            "--out", str(out)]
    return {"root": root, "out": out, "args": args, "env": amicus_env(root / "home")}


def _finals(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def _check_consistent(out: Path) -> None:
    """A manifest, when present, matches every file it lists; the GGUF under its final
    name is never partial (it is one of the complete sets written so far)."""
    manifest_path = out / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        for output in manifest["outputs"]:
            path = out / output["file"]
            assert path.stat().st_size == output["size"], output
            assert sha256_file(path) == output["sha256"], output


def test_kills_at_every_step_leave_no_partial_output(job):
    out, args, env = job["out"], job["args"], job["env"]
    assert main(args) == 0  # the earlier conversion, in this process (faster)
    complete = _finals(out)
    gguf_versions = {complete["m.Q4_K_M.gguf"]}
    for step in STEPS:
        before = _finals(out)
        kill_at(step, args, env)
        after = _finals(out)
        if step == "rename":  # the new model is in place; no manifest vouches for the set
            assert "manifest.json" not in after
            gguf_versions.add(after["m.Q4_K_M.gguf"])
        else:
            assert after == before, f"killed at {step}: final files changed"
        assert after["m.Q4_K_M.gguf"] in gguf_versions  # never a partial file
        _check_consistent(out)
        assert list(out.glob(".amicus-staging-*")), "the killed run's staging is left"
    rng = random.Random(None if LONG else 1)
    for _ in range(RANDOM_KILLS):
        kill_after(rng.uniform(0.3, 4.0), args, env)
        _check_consistent(out)
    final = run(args, env)
    assert final.returncode == 0, final.stderr[-2000:]
    _check_consistent(out)
    assert sorted(_finals(out)) == sorted(complete)
    assert not list(out.glob(".amicus-staging-*")), "staging left after a complete run"
