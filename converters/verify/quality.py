"""The quality report: how far the quantized model drifts from the merged F16, next to how
far the fine-tune moved the base.

On held-out text (never calibration text) each model reads the same tokens, chunk by
chunk from an empty cache. For every position we compare next-token distributions with
the merged F16 as the reference P: KL(P || Q) (mean and 99th percentile over positions)
and whether the most likely token agrees. Q is the quantized output; when adapters were
merged, also the base without them, so that the report can say whether quantization noise
is small next to what the fine-tune changed. A classifier is compared on whole held-out
inputs instead: the largest difference in any class probability and how often the verdict
(the most probable class) agrees.

Memory stays bounded: the reference log-probabilities go to a file in the staging
directory as they are computed (float32, one row per position) and are read back a block
of rows at a time, so only one model is loaded at once, with llama.cpp's logits of one
batch of positions (converters.llama_eval.EVAL_BATCH).

The arithmetic is float32, as llama.cpp's logits are: a block's log-softmax and KL are a
few vectorised passes over (rows, vocabulary) (numpy's pairwise sums keep float32 sums
over the vocabulary to about 1e-7 relative), and the per-position KLs are averaged in
float64. Float64 throughout took 3.4x as long (64 positions of Qwen's vocabulary: 1.7 s
against 0.5 s) for no digit the report shows (mean KL within 2e-5 relative of a float64
computation). The passes write into a `Workspace` of arrays kept from block to block: a
new 39 MB array per operation (64 rows of Qwen's vocabulary) is memory the kernel maps
afresh and faults in page by page, which cost four times the arithmetic itself (0.2 s
against 0.05 s a block on this project's 2-core VM; 12 s of a conversion's report).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from converters.llama_eval import Session

# Quantization noise counts as "clearly smaller" than the fine-tune's effect below this
# fraction of it (KL for chat models, largest probability change for classifiers).
NOISE_RATIO_LIMIT = 0.25
_ROWS = 64  # positions worked on at once (memory: a few arrays of rows x vocabulary x 4 B)


@dataclass
class HeldOut:
    """The held-out inputs, tokenized once by the F16 model's vocabulary: chunks of text
    for a chat model, whole inputs for a classifier."""

    set_name: str
    classifier: bool
    inputs: list[list[int]]

    @property
    def unit(self) -> str:
        return "text" if self.classifier else "chunk"

    def describe(self) -> dict[str, Any]:
        key = "texts" if self.classifier else "chunks"
        return {"set": self.set_name, key: len(self.inputs),
                "tokens": sum(len(i) for i in self.inputs)}


@dataclass
class Reference:
    """What the merged F16 gave: log-probabilities on disk (chat) or class probabilities."""

    n_vocab: int
    store: Path | None = None
    probabilities: list[list[float]] = field(default_factory=list)


class Workspace:
    """Float32 arrays of `_ROWS` x vocabulary reused block after block (see the module
    docstring: fresh arrays cost more in page faults than the arithmetic)."""

    def __init__(self, n_vocab: int) -> None:
        self.n_vocab = n_vocab
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, role: str, rows: int) -> np.ndarray:
        """The first `rows` rows of the array kept for `role` (overwritten by its next
        use)."""
        kept = self._arrays.get(role)
        if kept is None or kept.shape[0] < rows:
            kept = self._arrays[role] = np.empty((max(rows, _ROWS), self.n_vocab), np.float32)
        return kept[:rows]


def log_softmax(logits: np.ndarray, workspace: Workspace | None = None,
                role: str = "log_p") -> np.ndarray:
    """Float32 log-probabilities of rows of logits (the logits are untouched): a new array,
    or the workspace's array for `role`."""
    rows = logits.shape[0]
    space = workspace or Workspace(logits.shape[-1])  # a fresh one: new arrays
    out = space.array(role, rows)
    np.subtract(logits, logits.max(axis=-1, keepdims=True), out=out, dtype=np.float32)
    sums = np.exp(out, out=space.array("exp", rows)).sum(axis=-1, keepdims=True)
    out -= np.log(sums)
    return out


def kl_divergence(p_log: np.ndarray, q_log: np.ndarray,
                  workspace: Workspace | None = None) -> np.ndarray:
    """KL(P || Q) per row from float32 log-probabilities, never below 0 (rounding can give
    -1e-9 where P and Q agree)."""
    rows = p_log.shape[0]
    space = workspace or Workspace(p_log.shape[-1])
    terms = np.subtract(p_log, q_log, out=space.array("kl", rows))
    terms *= np.exp(p_log, out=space.array("exp", rows))
    return np.maximum(terms.sum(axis=-1), 0.0).astype(np.float64)


def reference(session: Session, held_out: HeldOut, store: Path,
              progress: Callable[[int], None] = lambda _n: None) -> Reference:
    """Evaluate the reference model on every held-out input."""
    if held_out.classifier:
        probabilities = []
        for tokens in held_out.inputs:
            probabilities.append(session.classify(tokens))
            progress(1)
        return Reference(session.n_vocab, probabilities=probabilities)
    workspace = Workspace(session.n_vocab)
    with open(store, "wb") as handle:
        for chunk in held_out.inputs:
            for block in _blocks(session.evaluate(chunk)):
                log_softmax(block, workspace).tofile(handle)
            progress(1)
    return Reference(session.n_vocab, store=store)


def drift(session: Session, held_out: HeldOut, ref: Reference,
          progress: Callable[[int], None] = lambda _n: None) -> dict[str, float]:
    """How far the model in `session` is from the reference on the held-out inputs."""
    if held_out.classifier:
        return _classifier_drift(session, held_out, ref, progress)
    if ref.store is None or ref.n_vocab != session.n_vocab:
        raise ValueError(f"no reference of {session.n_vocab} tokens to compare with")
    kls: list[np.ndarray] = []
    agree = 0
    workspace = Workspace(session.n_vocab)
    with open(ref.store, "rb") as stored:
        for chunk in held_out.inputs:
            for block in _blocks(session.evaluate(chunk)):
                q_log = log_softmax(block, workspace, "log_q")
                p_log = _read_rows(stored, workspace.array("log_p", len(q_log)))
                kls.append(kl_divergence(p_log, q_log, workspace))
                agree += int((p_log.argmax(axis=1) == q_log.argmax(axis=1)).sum())
            progress(1)
    values = np.concatenate(kls)
    return {"kl_mean": float(values.mean()), "kl_p99": float(np.percentile(values, 99)),
            "top1_agreement": agree / values.size, "positions": int(values.size)}


def _blocks(batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The logits of a chunk, `_ROWS` positions at a time."""
    for logits in batches:
        for start in range(0, len(logits), _ROWS):
            yield logits[start:start + _ROWS]


def _read_rows(handle: BinaryIO, into: np.ndarray) -> np.ndarray:
    """The next stored positions, as many as `into` has rows, read into it (a block at a
    time: memory stays near `_ROWS` rows of the vocabulary, whatever the text's length)."""
    if handle.readinto(into) != into.nbytes:  # type: ignore[attr-defined]
        raise ValueError("the stored reference ended early")
    return into


def _classifier_drift(session: Session, held_out: HeldOut, ref: Reference,
                      progress: Callable[[int], None]) -> dict[str, float]:
    largest, agree = 0.0, 0
    for tokens, expected in zip(held_out.inputs, ref.probabilities, strict=True):
        actual = session.classify(tokens)
        largest = max(largest, max(abs(a - e) for a, e in zip(actual, expected, strict=True)))
        agree += int(np.argmax(actual) == np.argmax(expected))
        progress(1)
    return {"max_probability_difference": largest,
            "verdict_agreement": agree / len(held_out.inputs), "texts": len(held_out.inputs)}


def build_report(held_out: HeldOut, quantized: dict[str, float],
                 base: dict[str, float] | None, base_note: str | None) -> dict[str, Any]:
    """The manifest's `quality` section: the figures, and a warning when quantization
    noise is not clearly smaller than the fine-tune's own effect."""
    report: dict[str, Any] = {"held_out": held_out.describe(), "quantized": quantized,
                              "base": base, "noise_to_finetune": None, "warning": None}
    if base_note:
        report["base_note"] = base_note
    if base is None:
        return report
    key = "max_probability_difference" if held_out.classifier else "kl_mean"
    effect, noise = base[key], quantized[key]
    ratio = noise / effect if effect > 0 else math.inf
    report["noise_to_finetune"] = round(ratio, 4) if math.isfinite(ratio) else None
    if ratio >= NOISE_RATIO_LIMIT:
        what = "largest probability change" if held_out.classifier else "mean KL"
        report["warning"] = (f"quantization noise is not clearly smaller than the fine-tune's "
                             f"effect ({what}: quantized {noise:.4g} vs base {effect:.4g}); "
                             "consider --quant Q5_K_M or Q8_0")
    return report
