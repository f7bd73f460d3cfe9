"""Run `amicus` and stop it at a named step, for kill tests: `python phase_hooks.py STEP --
ARGS...` patches the step so that, once it is under way, the process prints
`AMICUS-STEP <step>` on stderr and waits; the test then kills it with SIGKILL, exactly there.
STEP "none" runs `amicus` unpatched.

Steps of `amicus convert`: merge (a tensor merged, the GGUF half written), write (the
intermediate GGUF half written), quantize (llama.cpp writing the quantized file), verify
(the result loaded and being checked), rename (between the moves of the final renames).
Steps of `amicus audit` / `classify`: result (a result line written, before fsync), mid-line
(half a result line written and flushed).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ANNOUNCE = "AMICUS-STEP"


def _stop(step: str) -> None:
    print(f"{ANNOUNCE} {step}", file=sys.stderr, flush=True)
    while True:
        time.sleep(60)


def _after_calls(owner: Any, name: str, count: int, step: str) -> None:
    """Stop in the `count`-th call of owner.name, after the real call did its work."""
    real = getattr(owner, name)
    calls = [0]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == count:
            _stop(step)
        return result

    setattr(owner, name, wrapper)


def _merge() -> None:
    from converters.merge.merged_weights import MergedWeights

    _after_calls(MergedWeights, "float32", 3, "merge")


def _write() -> None:
    from converters.gguf.writer import LazyTensor

    _after_calls(LazyTensor, "tofile", 6, "write")


def _quantize() -> None:
    import llama_cpp

    from converters.quantize import quantizer

    real = llama_cpp.llama_model_quantize

    def watched(source: bytes, target: bytes, params: Any) -> int:
        def watch() -> None:  # llama.cpp holds this thread: watch the file it writes
            path = Path(target.decode())
            while not (path.exists() and path.stat().st_size > 0):
                time.sleep(0.0005)
            _stop("quantize")

        threading.Thread(target=watch, daemon=True).start()
        return real(source, target, params)

    quantizer.llama_cpp.llama_model_quantize = watched  # type: ignore[attr-defined]


def _verify() -> None:
    from converters.verify import checks

    _after_calls(checks, "greedy_check", 1, "verify")


def _rename() -> None:
    from converters.outputs import staging

    real = os.replace
    calls = [0]

    def replace(src: Any, dst: Any) -> None:
        real(src, dst)
        if ".amicus-staging-" in str(src):
            calls[0] += 1
            if calls[0] == 1:  # the model is in place, the rest is not
                _stop("rename")

    staging.os.replace = replace  # type: ignore[attr-defined]


def _result() -> None:
    from app.commands.batch import ResultWriter

    _after_calls(ResultWriter, "write", int(os.environ.get("AMICUS_STEP_COUNT", "2")),
                 "result")


def _mid_line() -> None:
    from app.commands.batch import ResultWriter

    count = int(os.environ.get("AMICUS_STEP_COUNT", "2"))
    real = ResultWriter.write
    calls = [0]

    def write(self: Any, result: dict) -> None:
        calls[0] += 1
        if calls[0] < count:
            return real(self, result)
        from app.commands.batch import json_line

        text = json_line(result)
        with self._lock:  # as the real write holds it: other workers wait, as they would
            self._handle.write(text[: len(text) // 2])
            self._handle.flush()
            _stop("mid-line")

    ResultWriter.write = write  # type: ignore[method-assign]


STEPS = {"merge": _merge, "write": _write, "quantize": _quantize, "verify": _verify,
         "rename": _rename, "result": _result, "mid-line": _mid_line, "none": lambda: None}


def main() -> int:
    step, separator, *args = sys.argv[1:]
    assert separator == "--", "usage: phase_hooks.py STEP -- ARGS..."
    STEPS[step]()
    from app.cli import main as amicus

    return amicus(args)


if __name__ == "__main__":
    sys.exit(main())
