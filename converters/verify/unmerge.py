"""The base without the adapters, for the quality report, as a llama.cpp LoRA adapter that
takes the adapters back out of the merged F16 (attached with scale -1), instead of the
base written out as a second F16 GGUF.

The merge made W' = W + sum_k (B_k s_k) @ A_k for every adapted weight, so W = W' - B @ A
with the adapters' factors stacked (rank: their ranks added up), carried into GGUF's
names and layout by the architecture's reordering of rows and columns. The merged F16
holds W' rounded to f16, so the weights llama.cpp computes with differ from the base by
half an f16 step of W' at most, the rounding a base written as F16 has anyway
(tests/converters/verify/test_unmerge.py: the same figures as the written base).

What it saves: writing the base (as large as the merged F16: 1.1 GB for a 0.6B model,
8 GB for a 4B) and loading a second model; the F16 already loaded for calibration reads
the held-out text once more. Only plain low-rank changes can be taken back this way
(LoRA and rsLoRA on linear weights, any number of adapters); for anything else (DoRA,
embeddings, trainable tokens, biases, replaced tensors) `write_unmerging_adapter` returns
False and the pipeline writes the base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from converters.gguf.architectures import Architecture, Reordering
from converters.merge.adapter import Adapter

UNMERGE_SCALE = -1.0  # attach with this scale: W' - B @ A
_FACTOR_TYPE = np.dtype(np.float16)  # half the bytes of float32; the factors' own rounding is 2^-11


@dataclass(frozen=True)
class _Planned:
    name: str  # Hugging Face name
    gguf_name: str
    rank: int
    shape: tuple[int, int]
    order: Reordering
    owners: tuple[Adapter, ...]


def write_unmerging_adapter(adapters: Sequence[Adapter], architecture: Architecture,
                            path: Path) -> bool:
    """Write the adapter that turns the merged model back into its base; False (nothing
    written) when some change is not a plain low-rank product."""
    plan = _plan(adapters, architecture)
    if plan is None:
        return False
    # Written in place: a file of the staging folder, read once and removed (the staging
    # folder goes whole if the conversion does not finish).
    writer = gguf.GGUFWriter(path, arch=architecture.gguf_arch)
    try:
        writer.add_type("adapter")
        writer.add_string("adapter.type", "lora")
        # No adapter.lora.alpha: llama.cpp then scales by the attach scale alone.
        item = _FACTOR_TYPE.itemsize
        for p in plan:
            out, inp = p.shape
            writer.add_tensor_info(f"{p.gguf_name}.lora_a", (p.rank, inp), _FACTOR_TYPE,
                                   p.rank * inp * item)
            writer.add_tensor_info(f"{p.gguf_name}.lora_b", (out, p.rank), _FACTOR_TYPE,
                                   out * p.rank * item)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for p in plan:
            b, a = _stacked(p)
            writer.write_tensor_data(a.astype(_FACTOR_TYPE))
            writer.write_tensor_data(b.astype(_FACTOR_TYPE))
    finally:
        writer.close()
    return True


def _plan(adapters: Sequence[Adapter], architecture: Architecture) -> list[_Planned] | None:
    per_adapter = [adapter.low_rank_changes() for adapter in adapters]
    if not adapters or any(ranks is None for ranks in per_adapter):
        return None
    names: dict[str, None] = {}
    for ranks in per_adapter:
        names.update(dict.fromkeys(ranks or {}))
    plan = []
    for name in names:
        owners = [(a, r[name]) for a, r in zip(adapters, per_adapter, strict=True)
                  if r and name in r]
        shape = owners[0][1][1]
        order = architecture.reordering(name, shape)
        if order is None or architecture.dropped(name) or len(shape) != 2:
            return None
        gguf_name = architecture.gguf_name(name)
        if not _adapted_by_llama_cpp(gguf_name):
            return None
        plan.append(_Planned(name, gguf_name, sum(r for _, (r, _s) in owners),
                             (int(shape[0]), int(shape[1])), order,
                             tuple(a for a, _ in owners)))
    return plan


def _adapted_by_llama_cpp(gguf_name: str) -> bool:
    """Whether llama.cpp multiplies this weight through its LoRA path: the blocks' weights
    and the output head. A classifier's head (cls.output) is multiplied directly: an
    adapter naming it loads and changes nothing (measured: the figures would be the merged
    model's), so such adapters are declined."""
    return gguf_name.startswith("blk.") or gguf_name == "output.weight"


def _stacked(p: _Planned) -> tuple[np.ndarray, np.ndarray]:
    """(B, A) of every adapter changing this weight side by side, reordered as the weight
    itself is in GGUF."""
    factors = [adapter.low_rank_factors(p.name) for adapter in p.owners]
    b = np.concatenate([f[0] for f in factors], axis=1)
    a = np.concatenate([f[1] for f in factors], axis=0)
    if p.order.rows is not None:
        b = b[p.order.rows]
    if p.order.columns is not None:
        a = a[:, p.order.columns]
    return b, a
