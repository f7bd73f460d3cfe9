"""Where inference runs (GPU offload, threads), in a form the UI can show."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can offload layers (CUDA, Metal, Vulkan...). Imported
    here, not at module load, so that light users of BackendInfo never load llama.cpp."""
    from converters.llama_runtime import gpu_offload_supported as supported

    return supported()


def resolve_gpu_layers(requested: int | None) -> int:
    """llama.cpp's n_gpu_layers: every layer (-1) when the build can offload, else none.
    An explicit value (settings) wins; llama.cpp ignores it on a CPU-only build."""
    if requested is not None:
        return requested
    return -1 if gpu_offload_supported() else 0


def offloaded_layers(requested: int, total: int) -> int:
    if not gpu_offload_supported():
        return 0
    return total if requested < 0 else min(requested, total)


@dataclass(frozen=True)
class BackendInfo:
    gpu_offload_supported: bool
    gpu_layers: int  # transformer layers on the GPU
    total_layers: int
    threads: int  # used by the last generation (or the default before the first)
    physical_cores: int
    adaptive_threads: bool  # threads follow the CPU load (no fixed count was set)
    system_info: str  # llama.cpp's build summary (CPU features, backends)

    def describe(self) -> str:
        """One line for a status bar, e.g. 'CPU · 2 threads (adaptive, 2 cores)'."""
        where = f"GPU {self.gpu_layers}/{self.total_layers} layers" if self.gpu_layers else "CPU"
        mode = "adaptive" if self.adaptive_threads else "fixed"
        noun = "thread" if self.threads == 1 else "threads"
        return f"{where} · {self.threads} {noun} ({mode}, {self.physical_cores} cores)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
