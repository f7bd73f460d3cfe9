"""One PEFT LoRA adapter, loaded and validated, merged into one base tensor at a time.

Loading reads adapter_config.json (adapter_config), maps every adapter tensor onto a base
tensor (keys) and checks every shape (targets), so that a wrong adapter is refused in
seconds, not after an hour of merging. `Adapter.apply` then merges with peft's exact
arithmetic (arithmetic), in float32. Besides the LoRA kinds, modules_to_save, saved biases
and peft's copies of embedding layers replace the base tensor (it may be larger: a resized
vocabulary).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from converters.checkpoint.safetensors_io import SafetensorsFile
from converters.errors import InputError
from converters.merge.adapter_config import AdapterConfig, read_config
from converters.merge.arithmetic import (
    add_lora_bias,
    dora_rescale,
    merge_lora,
    relative_change,
    replace_rows,
)
from converters.merge.keys import HEAD, Key, Resolver, parse_key, tied_embedding
from converters.merge.targets import Shapes, Target, Validator

WEIGHTS_NAME = "adapter_model.safetensors"


class Adapter:
    """A loaded, validated adapter; `apply` merges it into one base tensor at a time."""

    def __init__(self, path: Path, config: AdapterConfig, file: SafetensorsFile,
                 targets: dict[str, Target], tied: str | None, consumed: set[str]) -> None:
        self.path = path
        self.config = config
        self._file = file
        self._targets = targets
        self._where = f"{path.name}/{WEIGHTS_NAME}"
        self.tied_embedding = tied
        self._consumed = set(consumed)  # tied copies verified at load time
        self.relative_changes: dict[str, float] = {}

    # -- what it touches

    @property
    def targets(self) -> frozenset[str]:
        """Base tensor names this adapter changes or replaces (lm_head.weight included when
        it adapts a tied head, or when the head follows an embedding it keeps tied)."""
        names = set(self._targets)
        if self.head_follows_embedding:
            names.add(HEAD)
        return frozenset(names)

    @property
    def keeps_tie(self) -> bool:
        """Whether the tied head saw this adapter's embedding changes during training: with
        ensure_weight_tying, or trainable tokens (peft ties those by default)."""
        embed = self._targets.get(self.tied_embedding or "")
        return embed is not None and (self.config.ensure_weight_tying or embed.kind == "tokens")

    @property
    def head_follows_embedding(self) -> bool:
        return self.keeps_tie and HEAD not in self._targets

    @property
    def unties(self) -> bool:
        """Whether the tied head and the embedding diverge after this adapter: it adapts the
        head, or changes the embedding while the head kept using the original."""
        if self.tied_embedding is None:
            return False
        return HEAD in self._targets or (self.tied_embedding in self._targets
                                         and not self.keeps_tie)

    @property
    def scales(self) -> dict[str, float]:
        """The scale s of every LoRA-adapted base tensor (for the converter's log)."""
        return {name: t.scale for name, t in self._targets.items()
                if t.kind in ("linear", "embedding", "bias")}

    def low_rank_changes(self) -> dict[str, tuple[int, tuple[int, ...]]] | None:
        """Each changed base tensor's (rank, shape) when every change is a plain low-rank
        product W' = W + (B s) @ A of an (out, in) weight; None when some change is anything else
        (DoRA, embeddings, trainable tokens, biases, replaced tensors, fan_in_fan_out, a
        tied head following its embedding)."""
        if self.head_follows_embedding or self.config.fan_in_fan_out:
            return None
        ranks = {}
        for name, target in self._targets.items():
            if target.kind != "linear" or set(target.keys) != {"A", "B"}:
                return None
            ranks[name] = (self._file.tensors[target.keys["A"]].shape[0], target.shape)
        return ranks

    def low_rank_factors(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(B s, A) of a tensor `low_rank_changes` lists: (out, r) and (r, in), float32."""
        target = self._targets[name]
        b = self._read(target.keys["B"]) * np.float32(target.scale)
        return b, self._read(target.keys["A"])

    def output_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        target = self._target_for(name)
        return shape if target is None else target.out_shape

    def _target_for(self, name: str) -> Target | None:
        if name == HEAD and self.head_follows_embedding and self.tied_embedding:
            return self._targets[self.tied_embedding]
        return self._targets.get(name)

    # -- merging

    def apply(self, name: str, weight: np.ndarray) -> np.ndarray:
        """The tensor `name` after this adapter, from its float32 value before it. Returns
        `weight` itself when the adapter does not touch it."""
        target = self._target_for(name)
        if target is None:
            return weight
        if tuple(weight.shape) != target.shape:
            raise InputError(f"{self._where}: base tensor {name} has shape {tuple(weight.shape)} "
                             f"but the adapter was validated against {target.shape}")
        before = weight
        weight = self._merge(target, np.asarray(weight, dtype=np.float32))
        if not np.isfinite(weight).all():
            raise InputError(f"{self._where}: merging into {name} produced NaN or Inf values "
                             "(broken adapter?)")
        self._consumed.update(target.keys.values())
        self.relative_changes[name] = relative_change(before, weight)
        return weight

    def _merge(self, target: Target, weight: np.ndarray) -> np.ndarray:
        keys = target.keys
        replacement = keys.get("replace") or keys.get("copy")
        if replacement is not None:
            weight = self._read(replacement)
        if target.kind in ("linear", "embedding"):
            weight = self._merge_lora(target, weight)
        elif target.kind == "tokens":
            weight = replace_rows(weight, target.token_indices, self._read(keys["tokens"]))
        elif target.kind == "bias":
            weight = add_lora_bias(weight, self._read(keys["lora_bias"]), target.scale)
        return weight

    def _merge_lora(self, target: Target, weight: np.ndarray) -> np.ndarray:
        embedding = target.kind == "embedding"
        a_role, b_role = ("emb_A", "emb_B") if embedding else ("A", "B")
        a, b = self._read(target.keys[a_role]), self._read(target.keys[b_role])
        transposed = embedding or self.config.fan_in_fan_out  # embeddings always transpose
        merged = merge_lora(weight, a, b, target.scale, transposed=transposed)
        if "magnitude" not in target.keys:
            return merged
        return dora_rescale(merged, self._read(target.keys["magnitude"]), transposed=transposed)

    def _read(self, key: str) -> np.ndarray:
        return self._file.float32(key)

    # -- bookkeeping

    def check_consumed(self) -> None:
        """Raise if any adapter tensor was never merged (its base tensor was never visited)."""
        owners = {key: t.name for t in self._targets.values() for key in t.keys.values()}
        for key in self._file.tensors:
            if key not in self._consumed:
                raise InputError(f"{self._where}: tensor {key} was never merged (base tensor "
                                 f"{owners.get(key, '?')} was not visited)")

    def relative_change(self, name: str) -> float:
        """||W' - W|| / ||W|| of a merged tensor (over the common rows if it was resized)."""
        return self.relative_changes[name]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Adapter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Adapter({self.path}, {len(self._targets)} targets)"


def load_adapter(
    adapter_dir: Path,
    base_shapes: Mapping[str, tuple[int, ...]],
    *,
    tie_word_embeddings: bool = True,
) -> Adapter:
    """Read and validate a PEFT LoRA adapter against the base's tensor names and shapes.

    `tie_word_embeddings`: the base ties lm_head to the token embedding when it has no
    lm_head.weight of its own (transformers' default). An adapter may then adapt the head:
    it is matched to a virtual lm_head.weight shaped like the embedding.
    """
    adapter_dir = Path(adapter_dir)
    config = read_config(adapter_dir)
    file = _open_weights(adapter_dir)
    try:
        return _build(adapter_dir, config, file, dict(base_shapes), tie_word_embeddings)
    except BaseException:
        file.close()
        raise


def _open_weights(adapter_dir: Path) -> SafetensorsFile:
    path = adapter_dir / WEIGHTS_NAME
    if path.is_file():
        return SafetensorsFile(path)
    if (adapter_dir / "adapter_model.bin").is_file():
        raise InputError(f"{adapter_dir}: only a pickled adapter_model.bin; Amicus never "
                         "unpickles files. Save the adapter with safe_serialization=True")
    raise InputError(f"{adapter_dir}: no {WEIGHTS_NAME}")


def _build(adapter_dir: Path, config: AdapterConfig, file: SafetensorsFile,
           shapes: dict[str, tuple[int, ...]], tie_word_embeddings: bool) -> Adapter:
    where = f"{adapter_dir.name}/{WEIGHTS_NAME}"
    tied = tied_embedding(shapes) if tie_word_embeddings else None
    if tied is not None:
        shapes[HEAD] = shapes[tied]  # the virtual tied head
    resolver = Resolver(shapes, where)
    targets: dict[str, Target] = {}
    for key in file.tensors:
        parsed = parse_key(key, config, where)
        name = _resolve(resolver, parsed, where)
        target = targets.setdefault(name, Target(name, parsed.module, shapes[name]))
        # Two keys for one role, or keys reaching one tensor through two module paths.
        clash = target.keys.get(parsed.role) or (
            next(iter(target.keys.values())) if parsed.module != target.module else None)
        if clash is not None:
            raise InputError(f"{where}: base tensor {name} is named twice: by {clash} and {key}")
        target.keys[parsed.role] = key
    consumed = _drop_tied_copies(targets, tied, config, file, where)
    checker = Validator(config, Shapes(file), where, adapter_dir.name)
    for target in targets.values():
        checker.check(target)
    return Adapter(adapter_dir, config, file, targets, tied, consumed)


def _resolve(resolver: Resolver, parsed: Key, where: str) -> str:
    try:
        return resolver.resolve(parsed.key, f"{parsed.module}.{parsed.param}")
    except InputError:
        if parsed.role != "lora_bias":
            raise
        # peft refuses this merge too: the trained bias has nothing to be added to.
        raise InputError(f"{where}: lora_bias is set but base tensor {parsed.module}.bias does "
                         f"not exist ({parsed.key}); the LoRA bias cannot be merged") from None


def _drop_tied_copies(targets: dict[str, Target], tied: str | None, config: AdapterConfig,
                      file: SafetensorsFile, where: str) -> set[str]:
    """With ensure_weight_tying on a tied base, peft saves lm_head's LoRA as the transposed
    embedding LoRA (A_head = B_emb.T, B_head = A_emb.T): one delta, seen by both. Verify the
    copies and keep the head tied instead of merging the delta twice."""
    head = targets.get(HEAD)
    if tied is None or head is None or not config.ensure_weight_tying:
        return set()
    embed = targets.get(tied)
    if embed is None or not {"emb_A", "emb_B"} <= embed.keys.keys():
        return set()
    pairs = (("A", "emb_B"), ("B", "emb_A"))
    for head_role, embed_role in pairs:
        key = head.keys.get(head_role)
        if key is None or not np.array_equal(file.float32(key),
                                             file.float32(embed.keys[embed_role]).T):
            raise InputError(f"{where}: ensure_weight_tying is set but lm_head's lora_{head_role} "
                             f"is not the transposed {embed.keys[embed_role]}")
    extra = set(head.keys) - {"A", "B", "copy"}
    if extra:
        raise InputError(f"{where}: ensure_weight_tying is set but lm_head also has "
                         f"{head.keys[sorted(extra)[0]]}")
    del targets[HEAD]
    return set(head.keys.values())
