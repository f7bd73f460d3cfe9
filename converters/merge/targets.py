"""What one adapter does to each base tensor, worked out and checked before any data is read.

Every adapter tensor is mapped to one base tensor and every shape checked when the adapter
is loaded, so that a wrong adapter is refused in seconds, not after an hour of merging.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from converters.checkpoint.safetensors_io import SafetensorsFile
from converters.errors import InputError
from converters.merge.adapter_config import (
    CONFIG_NAME,
    AdapterConfig,
    module_rank_and_alpha,
    scale_of,
)


@dataclass
class Target:
    """Everything one adapter does to one base tensor, in the order it is applied."""

    name: str
    module: str  # the module's path in the training model (rank/alpha patterns match it)
    shape: tuple[int, ...]  # the base tensor's shape before this adapter
    keys: dict[str, str] = field(default_factory=dict)  # role -> adapter key
    kind: str = ""  # "linear", "embedding", "tokens", "bias" or "replace"
    scale: float = 0.0
    token_indices: tuple[int, ...] = ()
    out_shape: tuple[int, ...] = ()  # after this adapter (a replacement may resize it)


@dataclass(frozen=True)
class Shapes:
    """Shape lookups of the adapter file, for validation before any data is read."""

    file: SafetensorsFile

    def __call__(self, key: str) -> tuple[int, ...]:
        return self.file.tensors[key].shape


@dataclass(frozen=True)
class Validator:
    config: AdapterConfig
    shape_of: Shapes
    where: str
    adapter_name: str

    def check(self, target: Target) -> None:
        keys = target.keys
        if "replace" in keys and "copy" in keys:
            raise InputError(f"{self.where}: base tensor {target.name} is named twice: by "
                             f"{keys['copy']} and {keys['replace']}")
        replacement = keys.get("replace") or keys.get("copy")
        current = target.shape if replacement is None else self._check_replacement(
            target, replacement)
        target.out_shape = current
        roles = set(keys) - {"replace", "copy"}
        if not roles:
            target.kind = "replace"
        elif roles == {"lora_bias"}:  # after a saved bias (bias="all") if there is one
            self._check_bias(target)
        elif "replace" in keys:
            raise InputError(f"{self.where}: base tensor {target.name} is named twice: by "
                             f"{keys['replace']} and {keys[sorted(roles)[0]]}")
        elif roles <= {"A", "B", "magnitude"} or roles <= {"emb_A", "emb_B", "magnitude"}:
            self._check_lora(target, current)
        elif roles == {"tokens"}:
            self._check_tokens(target, current)
        else:
            first, second = sorted(roles)[:2]
            raise InputError(f"{self.where}: base tensor {target.name} is named twice: by "
                             f"{keys[first]} and {keys[second]}")

    def _check_replacement(self, target: Target, key: str) -> tuple[int, ...]:
        saved = self.shape_of(key)
        base = target.shape
        # A replacement may resize a matrix's rows (the vocabulary); nothing else may change.
        if len(saved) != len(base) or saved[1:] != base[1:] or (len(base) < 2 and saved != base):
            raise InputError(f"{self.where}: tensor {key} has shape {saved} but base tensor "
                             f"{target.name} has shape {base} (adapter for another base?)")
        return saved

    def _check_lora(self, target: Target, shape: tuple[int, ...]) -> None:
        keys = target.keys
        embedding = "emb_A" in keys or "emb_B" in keys
        a_role, b_role = ("emb_A", "emb_B") if embedding else ("A", "B")
        for role in (a_role, b_role):
            if role not in keys:
                other = keys.get(a_role) or keys.get(b_role) or keys["magnitude"]
                raise InputError(f"{self.where}: {other} has no matching "
                                 f"{'lora_embedding_' if embedding else 'lora_'}{role[-1]}")
        a_key, b_key = keys[a_role], keys[b_role]
        a, b = self.shape_of(a_key), self.shape_of(b_key)
        if len(a) != 2 or len(b) != 2:
            raise InputError(f"{self.where}: tensor {a_key} has shape {a} and {b_key} has shape "
                             f"{b}; only 2-D (linear and embedding) LoRA is supported")
        if b[1] != a[0]:
            raise InputError(f"{self.where}: tensor {b_key} has shape {b} but {a_key} has shape "
                             f"{a} (ranks differ)")
        expected = self._expected_base_shape(embedding, a, b)
        if len(shape) != 2 or shape != expected:
            raise InputError(f"{self.where}: tensor {a_key} has shape {a} and {b_key} has shape "
                             f"{b}, which need base tensor {target.name} of shape {expected}, "
                             f"but it has shape {shape} (adapter for another base?)")
        r, alpha = module_rank_and_alpha(self.config, target.module,
                                          f"{self.adapter_name}/{CONFIG_NAME}")
        if r != a[0]:
            raise InputError(f"{self.where}: tensor {a_key} has rank {a[0]} but "
                             f"{CONFIG_NAME} gives r={r} for {target.module}")
        target.kind = "embedding" if embedding else "linear"
        target.scale = scale_of(self.config, r, alpha)
        self._check_magnitude(target, shape, embedding)

    def _expected_base_shape(self, embedding: bool, a: tuple[int, ...],
                             b: tuple[int, ...]) -> tuple[int, int]:
        if embedding:
            return (a[1], b[0])  # A: (r, vocab), B: (hidden, r), E: (vocab, hidden)
        if self.config.fan_in_fan_out:
            return (a[1], b[0])  # Conv1D stores (in, out)
        return (b[0], a[1])

    def _check_magnitude(self, target: Target, shape: tuple[int, ...], embedding: bool) -> None:
        key = target.keys.get("magnitude")
        if key is None:
            if self.config.use_dora:
                raise InputError(f"{self.where}: use_dora is set but {target.module} has no "
                                 "lora_magnitude_vector")
            return
        if not self.config.use_dora:
            raise InputError(f"{self.where}: tensor {key} is a DoRA magnitude but use_dora is "
                             "not set in adapter_config.json")
        per_column = embedding or self.config.fan_in_fan_out
        expected = (shape[1],) if per_column else (shape[0],)
        if self.shape_of(key) != expected:
            raise InputError(f"{self.where}: tensor {key} has shape {self.shape_of(key)} but "
                             f"base tensor {target.name} of shape {shape} needs {expected}")

    def _check_tokens(self, target: Target, shape: tuple[int, ...]) -> None:
        key = target.keys["tokens"]
        indices = token_indices(self.config, target.module)
        if indices is None:
            raise InputError(f"{self.where}: tensor {key} has no trainable_token_indices for "
                             f"{target.module} in {CONFIG_NAME}")
        if len(shape) != 2 or any(not 0 <= i < shape[0] for i in indices):
            raise InputError(f"{self.where}: trainable_token_indices for {target.module} fall "
                             f"outside base tensor {target.name} of shape {shape}")
        if self.shape_of(key) != (len(indices), shape[1]):
            raise InputError(f"{self.where}: tensor {key} has shape {self.shape_of(key)} but "
                             f"{len(indices)} token indices of {target.name} {shape} need "
                             f"{(len(indices), shape[1])}")
        target.kind = "tokens"
        target.token_indices = tuple(indices)

    def _check_bias(self, target: Target) -> None:
        key = target.keys["lora_bias"]
        if not self.config.lora_bias:
            raise InputError(f"{self.where}: tensor {key} is a LoRA bias but lora_bias is not set "
                             "in adapter_config.json")
        if self.shape_of(key) != target.shape:
            raise InputError(f"{self.where}: tensor {key} has shape {self.shape_of(key)} but base "
                             f"tensor {target.name} has shape {target.shape}")
        # The bias merges with the scale of its module's LoRA weight.
        r, alpha = module_rank_and_alpha(self.config, target.module,
                                          f"{self.adapter_name}/{CONFIG_NAME}")
        target.kind = "bias"
        target.scale = scale_of(self.config, r, alpha)


def token_indices(config: AdapterConfig, module: str) -> list[int] | None:
    indices = config.trainable_token_indices
    if isinstance(indices, list):
        return indices  # the list form targets the input embedding
    if isinstance(indices, dict):
        for name, values in indices.items():
            if module == name or module.endswith(f".{name}"):
                return list(values)
    return None
