"""The base checkpoint with adapters merged in, seen one tensor at a time.

Nothing is merged ahead: `float32(name)` reads the base tensor and applies each adapter in
order, so memory stays near one tensor whatever the model size. Adapters stack: the second
sees the first one's result, exactly as when peft merges an adapter, saves, and a second
adapter is loaded onto the merged model and merged.

(peft, merging several DoRA adapters loaded together on one model, takes each one's norm
on the unmerged base instead; stacking here is the merge-save-load-merge sequence.)

Tied embeddings. A base without lm_head.weight (tie_word_embeddings) computes its logits with
the token embedding. During training, a LoRA on lm_head changed only the head and a LoRA on
embed_tokens changed only the input embeddings: the tie was broken in the forward pass. We
merge what training computed, so such an adapter unties the model: `names()` gains
lm_head.weight (the embedding plus the head's own changes) and the token embedding gets only
its own changes. peft's merge_and_unload adds the head delta in place to the shared tensor
instead, changing the input embeddings too (and, with ensure_weight_tying, adds the shared
delta twice). Adapters that kept the tie during training (ensure_weight_tying, trainable
tokens) keep it: the head follows the embedding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from converters.checkpoint.safetensors_io import Checkpoint
from converters.errors import InputError
from converters.merge.adapter import HEAD, Adapter, load_adapter, tied_embedding


def load_adapters(
    base: Checkpoint, adapter_dirs: Iterable[Path], *, tie_word_embeddings: bool = True
) -> list[Adapter]:
    """Load adapters to be applied in order, each validated against the shapes the ones
    before it leave (a first adapter may resize the vocabulary)."""
    shapes = {name: base.info(name).shape for name in base.names()}
    adapters: list[Adapter] = []
    try:
        for directory in adapter_dirs:
            adapter = load_adapter(directory, shapes, tie_word_embeddings=tie_word_embeddings)
            adapters.append(adapter)
            shapes = {name: adapter.output_shape(name, shape) for name, shape in shapes.items()}
    except BaseException:
        for adapter in adapters:
            adapter.close()
        raise
    return adapters


class MergedWeights:
    """The merged model's tensors: the base's names (plus lm_head.weight when untied)."""

    def __init__(self, base: Checkpoint, adapters: Sequence[Adapter]) -> None:
        self.base = base
        self.adapters = list(adapters)
        self.tied_embedding = tied_embedding(base.names())
        # Which embedding an adapter took as tied must agree with this base.
        for adapter in self.adapters:
            if adapter.tied_embedding not in (None, self.tied_embedding):
                raise InputError(f"{adapter.path.name}: loaded against another base "
                                 f"(tied to {adapter.tied_embedding})")
        self.untied = any(adapter.unties for adapter in self.adapters)
        self.changed = any(adapter.targets for adapter in self.adapters)
        self._names = base.names()
        if self.untied:
            self._names.append(HEAD)
        self._check_targets()

    def _check_targets(self) -> None:
        """Every adapter target is a tensor of the merged model (a tied head that stays tied
        is reached through the embedding)."""
        known = set(self._names) | {HEAD}
        for adapter in self.adapters:
            missing = sorted(adapter.targets - known)
            if missing:
                raise InputError(f"{adapter.path.name}: targets {missing[0]}, which the base "
                                 "does not have")

    def names(self) -> list[str]:
        return list(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def _source(self, name: str) -> str:
        if name not in self._names:
            raise KeyError(name)
        if name == HEAD and self.untied and HEAD not in self.base and self.tied_embedding:
            return self.tied_embedding
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self.base.info(self._source(name)).shape
        for adapter in self.adapters:
            shape = adapter.output_shape(name, shape)
        return shape

    def float32(self, name: str) -> np.ndarray:
        """The merged tensor: the base in float32, then each adapter in order."""
        weight = self.base.float32(self._source(name))
        for adapter in self.adapters:
            weight = adapter.apply(name, weight)
        return weight

    def untouched(self, name: str) -> bool:
        """True when no adapter changes this tensor: it is the base tensor as stored."""
        return self._source(name) == name and not any(
            name in adapter.targets for adapter in self.adapters)

    def float32_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows of an untouched tensor, read without loading the rest of it."""
        if not self.untouched(name):
            raise ValueError(f"{name} is changed by an adapter: read it whole")
        return self.base.float32_rows(name, start, stop)

    def finish(self) -> None:
        """Raise if some adapter tensor was never merged (call after visiting every name)."""
        for adapter in self.adapters:
            adapter.check_consumed()

    def report(self) -> list[tuple[str, str, float]]:
        """(adapter directory, tensor, ||W' - W|| / ||W||) for every tensor merged so far."""
        return [(adapter.path.name, name, change)
                for adapter in self.adapters
                for name, change in adapter.relative_changes.items()]
