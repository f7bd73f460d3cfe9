"""peft's merge arithmetic on float32 numpy arrays (shared/reference/lora-merge.md, checked
against peft 0.21.2's tuners/lora/layer.py, variants.py and dora.py):

- linear:    W' = W + (B @ A) * s            (fan_in_fan_out: the delta is transposed)
- embedding: E' = E + (B @ A).T * s          (A: (r, vocab), B: (hidden, r))
- DoRA:      V = W + delta; W' = m / ||V|| * V, the norm taken per output row of a linear
             weight, but per hidden column (over the vocabulary) of an embedding
- lora_bias: b' = b + lora_B.bias * s
- trainable_token_indices: the saved rows replace those rows of the embedding

s (adapter_config.scale_of) is applied as a float32 scalar, as numpy and torch both round
it first. The operations and their order are peft's, so merges are bit-identical to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_CHUNK_ROWS = 4096  # float64 work arrays stay small whatever the tensor


def merge_lora(weight: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float, *,
               transposed: bool) -> np.ndarray:
    """W + (B @ A) * s, or W + (B @ A).T * s for embeddings and fan_in_fan_out weights.

    peft computes transpose(B @ A) * scaling, then W + delta. The delta is scaled and the
    weight added in place, so an embedding-sized merge holds two tensors, not four: x * s
    and w + x are the same float32 operations either way."""
    merged = a.T @ b.T if transposed else b @ a
    merged *= np.float32(scale)
    merged += weight
    return merged


def dora_rescale(merged: np.ndarray, magnitude: np.ndarray, *, transposed: bool) -> np.ndarray:
    """DoRA: m / ||V|| * V. The norm runs over the input dimension of a linear layer (rows
    of the (out, in) weight, columns when fan_in_fan_out stores (in, out)) and, for an
    embedding, over the vocabulary (peft treats embeddings as fan_in_fan_out)."""
    axis = 0 if transposed else 1
    norm = np.sqrt(_sum_of_squares(merged, axis)).astype(np.float32)
    factor = magnitude / norm
    merged *= factor[None, :] if transposed else factor[:, None]
    return merged


def add_lora_bias(bias: np.ndarray, lora_bias: np.ndarray, scale: float) -> np.ndarray:
    """peft: base_layer.bias + lora_B.bias * scaling."""
    return bias + lora_bias * np.float32(scale)


def replace_rows(weight: np.ndarray, indices: Sequence[int], rows: np.ndarray) -> np.ndarray:
    """Trainable tokens: the saved rows replace those rows (a copy; `weight` is untouched)."""
    weight = weight.copy()
    weight[list(indices)] = rows
    return weight


def _sum_of_squares(matrix: np.ndarray, axis: int) -> np.ndarray:
    """Sums of squares along `axis` of a 2-D float32 array, accumulated in float64 (the
    correctly rounded norm; torch's cascade summation is within a few ulps of it)."""
    total = np.zeros(matrix.shape[1 - axis], dtype=np.float64)
    for start in range(0, matrix.shape[0], _CHUNK_ROWS):
        chunk = matrix[start:start + _CHUNK_ROWS].astype(np.float64)
        if axis == 1:
            total[start:start + _CHUNK_ROWS] = np.einsum("ij,ij->i", chunk, chunk)
        else:
            total += np.einsum("ij,ij->j", chunk, chunk)
    return total


def relative_change(before: np.ndarray, after: np.ndarray) -> float:
    """||after - before|| / ||before||, over the rows both have (a resized vocabulary adds
    rows), computed in chunks so that no full-size temporary is made. A report figure, not
    part of the merge: float32 BLAS dot products are precise enough and several times
    faster than float64 sums."""
    if before.ndim == 0 or before.shape[1:] != after.shape[1:]:
        return float("inf")
    rows = min(before.shape[0], after.shape[0])
    old_sq = diff_sq = 0.0
    for start in range(0, rows, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, rows)
        old = np.ascontiguousarray(before[start:stop], dtype=np.float32).reshape(-1)
        diff = (after[start:stop] - before[start:stop]).reshape(-1)
        old_sq += float(np.dot(old, old))
        diff_sq += float(np.dot(diff, diff))
    if old_sq == 0:
        return 0.0 if diff_sq == 0 else float("inf")
    return math.sqrt(diff_sq / old_sq)
