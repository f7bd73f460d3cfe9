"""Quantization in-process through llama.cpp's `llama_model_quantize` (no separate binary).

With an importance matrix (converters.quantize.imatrix), llama.cpp weighs each column's
rounding error by the mean squared activation that column carried on calibration text.

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
from converters.quantize.imatrix import ImportanceMatrix

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
             threads: int | None = None, imatrix: ImportanceMatrix | None = None,
             imatrix_file: str = "",
             progress: Callable[[int, int], None] = lambda _done, _total: None) -> None:
    """Quantize the GGUF at `source` to `target`, weighing rounding errors by `imatrix`
    when given (recorded in the output's quantize.imatrix.* metadata, as llama-quantize
    records it). Raises RuntimeError with llama.cpp's reason on failure.
    `progress(bytes_written, bytes_expected)` is polled while it runs."""
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
    # Kept referenced until llama_model_quantize returns: it reads them in place.
    keep_alive = _set_imatrix(params, imatrix, imatrix_file) if imatrix is not None else None
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
    del keep_alive
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


def _set_imatrix(params: llama_cpp.llama_model_quantize_params, imatrix: ImportanceMatrix,
                 file_name: str) -> list[object]:
    """Point `params` at the matrix (a NULL-named entry ends the array) and at the
    metadata llama-quantize writes with it. Returns what must outlive the call."""
    names = imatrix.names()
    values = [imatrix.values(name) for name in names]
    entries = (llama_cpp.llama_model_imatrix_data * (len(names) + 1))()
    for entry, name, data in zip(entries, names, values, strict=False):
        entry.name = name.encode()
        entry.data = data.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        entry.size = data.size
    entries[len(names)].name = None
    params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    metadata = [("quantize.imatrix.file", file_name),
                ("quantize.imatrix.dataset", (imatrix.datasets or [""])[0]),
                ("quantize.imatrix.entries_count", len(names)),
                ("quantize.imatrix.chunks_count", imatrix.chunk_count)]
    kv = (llama_cpp.llama_model_kv_override * (len(metadata) + 1))()
    for override, (key, value) in zip(kv, metadata, strict=False):
        override.key = key.encode()
        if isinstance(value, str):
            override.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
            override.value.val_str = value.encode()[:127]
        else:
            override.tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
            override.value.val_i64 = value
    kv[len(metadata)].key = b""  # an empty key ends the array
    params.kv_overrides = ctypes.cast(kv, ctypes.POINTER(llama_cpp.llama_model_kv_override))
    return [entries, values, kv]


def _watch(target: Path, expected: int, done: threading.Event,
           progress: Callable[[int, int], None]) -> None:
    while not done.wait(0.25):
        with contextlib.suppress(FileNotFoundError):
            progress(min(target.stat().st_size, expected), expected)
