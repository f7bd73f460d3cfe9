"""Quantization in-process through llama.cpp's `llama_model_quantize` (no separate binary).

The classifier head (`cls.output.weight`) is kept at Q8_0: it is two rows, tiny, and it
alone decides the verdict, so 4-bit rounding there buys nothing and costs accuracy.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import llama_cpp

from converters.llama_runtime import last_llama_error, quiet_llama_logs

# --quant name -> llama file type
QUANT_FTYPES: dict[str, int] = {
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
}
# Expected bits per weight, for the progress estimate only.
_BITS_PER_WEIGHT = {"Q4_K_M": 4.9, "Q5_K_M": 5.7, "Q8_0": 8.5}
KEEP_Q8_PATTERNS = (r"^cls\.output\.weight$",)


def quantize(source: Path, target: Path, quant: str, *, source_bits: int = 16,
             threads: int | None = None,
             progress: Callable[[int, int], None] = lambda _done, _total: None) -> None:
    """Quantize the GGUF at `source` to `target`. Raises RuntimeError with llama.cpp's
    reason on failure. `progress(bytes_written, bytes_expected)` is polled while it runs."""
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = QUANT_FTYPES[quant]
    params.nthread = threads or max(1, (os.cpu_count() or 2))
    overrides = (llama_cpp.llama_model_tensor_override * (len(KEEP_Q8_PATTERNS) + 1))()
    for i, pattern in enumerate(KEEP_Q8_PATTERNS):
        overrides[i].pattern = pattern.encode()
        overrides[i].type = llama_cpp.GGML_TYPE_Q8_0
    overrides[len(KEEP_Q8_PATTERNS)].pattern = None  # NULL-terminated
    override_pointer = ctypes.POINTER(llama_cpp.llama_model_tensor_override)
    params.tt_overrides = ctypes.cast(overrides, override_pointer)
    expected = int(source.stat().st_size * _BITS_PER_WEIGHT[quant] / source_bits)
    quiet_llama_logs()
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(target, expected, done, progress),
                               daemon=True)
    watcher.start()
    try:
        status = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params))
    finally:
        done.set()
        watcher.join()
    if status != 0:
        _check_room(target, expected)
        raise RuntimeError(f"llama.cpp could not quantize to {quant}: {last_llama_error()}")
    progress(target.stat().st_size, target.stat().st_size)


def _check_room(target: Path, expected: int) -> None:
    """llama.cpp reports a full disk as "iostream error": say what it is, naming the file,
    when the rest of the output cannot fit."""
    written = target.stat().st_size if target.exists() else 0
    if shutil.disk_usage(target.parent).free < expected - written:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))


def _watch(target: Path, expected: int, done: threading.Event,
           progress: Callable[[int, int], None]) -> None:
    while not done.wait(0.25):
        with contextlib.suppress(FileNotFoundError):
            progress(min(target.stat().st_size, expected), expected)
