"""Fuzzing model loading (converters.llama_runtime.load_llama: what verification, the engine
and import-ollama use): damaged GGUF files are refused with one line naming the file, or
load; never another exception or a hang.

llama.cpp parses the file in C++, so the cases run in a worker process: a crash there is
seen, and attributed to its file, instead of taking pytest down. llama.cpp 0.3.36 aborts
(GGML_ASSERT, SIGABRT) on a token list holding the same token twice; that is reported and
tolerated here, nothing Amicus can catch (see the note in README "Fault tolerance"). Any
other crash fails the test.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from converters.pipeline import ConvertRequest, Progress, convert
from tests.tools.fuzzing import FUZZ_LONG_FACTOR, LONG

CASES = 40 * (FUZZ_LONG_FACTOR if LONG else 1)
ROOT = Path(__file__).resolve().parents[2]
_WORKER = r"""
import json, sys
from pathlib import Path
from app.errors import describe
from converters.errors import AmicusError
from converters.llama_runtime import load_llama
for name in sys.argv[1:]:
    print(json.dumps({"start": name}), flush=True)
    try:
        load_llama(Path(name), n_ctx=64).close()
        outcome = {"ok": name}
    except AmicusError as exc:
        failure = describe(exc)
        outcome = {"refused": name, "line": failure.line, "code": failure.exit_code}
    except Exception as exc:
        outcome = {"bug": name, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(outcome), flush=True)
"""


def _mutate(blob: bytes, rng: random.Random) -> bytes:
    data = bytearray(blob)
    for _ in range(rng.randint(1, 3)):
        hot = min(len(data), 40_000)  # the header: key-values, tensor infos
        at = rng.randrange(hot if rng.random() < 0.8 else len(data)) if data else 0
        op = rng.choice(["flip", "truncate", "overwrite", "insert"])
        if op == "flip" and data:
            data[at] ^= 1 << rng.randrange(8)
        elif op == "truncate":
            del data[at:]
        elif op == "overwrite":
            data[at:at + 8] = rng.randbytes(8)
        else:
            data[at:at] = rng.randbytes(rng.randint(1, 8))
    return bytes(data)


@pytest.fixture(scope="module")
def gguf_file(sources, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz-gguf")
    request = ConvertRequest(base=str(sources.qwen3), name="m", out_dir=out, verify=False)
    return convert(request, Progress(enabled=False)).outputs[0]


def _run_all(files: list[Path]) -> tuple[dict[str, int], list[str]]:
    """Load every file in worker processes; a worker that dies is replaced and the file it
    died on counted as a crash (with the abort message llama.cpp printed)."""
    counts = {"ok": 0, "refused": 0, "aborted": 0}
    findings: list[str] = []
    pending = [str(f) for f in files]
    while pending:
        proc = subprocess.run([sys.executable, "-c", _WORKER, *pending], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        current = None
        for line in proc.stdout.splitlines():
            event = json.loads(line)
            if "start" in event:
                current = event["start"]
                continue
            current = None
            if "bug" in event:
                findings.append(f"{event['bug']}: {event['error']}")
            elif "refused" in event:
                assert event["code"] == 2 and "\n" not in event["line"], event
                assert Path(event["refused"]).name in event["line"], event
                counts["refused"] += 1
            else:
                counts["ok"] += 1
        if proc.returncode == 0:
            break
        assert current is not None, proc.stderr[-2000:]
        if proc.returncode == -6 and "GGML_ASSERT" in proc.stderr:
            counts["aborted"] += 1
        else:
            findings.append(f"{current}: crashed with status {proc.returncode}: "
                            f"{proc.stderr[-500:]}")
        pending = pending[pending.index(current) + 1:]
    return counts, findings


def test_damaged_gguf_files_are_refused_or_loaded(gguf_file, tmp_path):
    rng = random.Random(0 if not LONG else None)
    blob = gguf_file.read_bytes()
    files = []
    for number in range(CASES):
        path = tmp_path / f"case-{number}.gguf"
        path.write_bytes(_mutate(blob, rng))
        files.append(path)
    counts, findings = _run_all(files)
    print(f"{CASES} damaged GGUF files: {counts}")
    assert not findings, "\n".join(findings)
    assert counts["refused"] > CASES // 4  # the mutations do reach the loader's checks


@pytest.mark.parametrize("damage", ["empty", "magic", "version", "half"])
def test_corpus_of_damaged_model_files(gguf_file, tmp_path, damage):
    blob = gguf_file.read_bytes()
    data = {"empty": b"", "magic": b"GGUX" + blob[4:],
            "version": blob[:4] + (99).to_bytes(4, "little") + blob[8:],
            "half": blob[: len(blob) // 2]}[damage]
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    counts, findings = _run_all([path])
    assert not findings and counts == {"ok": 0, "refused": 1, "aborted": 0}
