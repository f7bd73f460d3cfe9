"""One PEFT LoRA adapter, merged into base weights with numpy exactly as peft merges it.

The arithmetic (shared/reference/lora-merge.md, checked against peft 0.21.2's
tuners/lora/layer.py, variants.py and dora.py):

- linear:    W' = W + (B @ A) * s            (fan_in_fan_out: the delta is transposed)
- embedding: E' = E + (B @ A).T * s          (A: (r, vocab), B: (hidden, r))
- DoRA:      V = W + delta; W' = m / ||V|| * V, the norm taken per output row of a linear
             weight, but per hidden column (over the vocabulary) of an embedding
- lora_bias: b' = b + lora_B.bias * s
- modules_to_save, saved biases, peft's copies of embedding layers: the saved tensor replaces
  the base tensor (it may be larger: a resized vocabulary)
- trainable_token_indices: the saved rows replace those rows of the embedding

s = alpha / r, or alpha / sqrt(r) with use_rslora, computed in double and applied to float32
arrays (numpy and torch both round the scalar to float32 first). Everything is float32.

Every adapter tensor is mapped to one base tensor, and every shape checked, when the adapter
is loaded, so that a wrong adapter is refused in seconds, not after an hour of merging.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converters.errors import InputError
from converters.safetensors_io import SafetensorsFile

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
HEAD = "lm_head.weight"
_PEFT_PREFIX = "base_model.model."

# Prefixes under which the same text model sits in different architectures: transformers 5
# multimodal (Qwen3.5: model.language_model.*), transformers 4 multimodal
# (language_model.model.*), and plain causal LMs (model.*). Longest first.
_WRAPPER_PREFIXES = (
    "model.language_model.",
    "language_model.model.",
    "model.text_model.",
    "language_model.",
    "model.",
)

# Adapter key suffixes -> (role, parameter of the module). Legacy files carry ".default".
_ROLES: tuple[tuple[str, str, str | None], ...] = (
    (r"\.lora_A(?:\.default)?\.weight", "A", "weight"),
    (r"\.lora_B(?:\.default)?\.weight", "B", "weight"),
    (r"\.lora_B(?:\.default)?\.bias", "lora_bias", "bias"),
    (r"\.lora_embedding_A(?:\.default)?", "emb_A", "weight"),
    (r"\.lora_embedding_B(?:\.default)?", "emb_B", "weight"),
    (r"\.lora_magnitude_vector(?:\.default)?(?:\.weight)?", "magnitude", "weight"),
    (r"\.token_adapter\.trainable_tokens_delta(?:\.default)?", "tokens", "weight"),
    (r"\.modules_to_save\.default\.(?P<param>weight|bias)", "replace", None),
    (r"\.base_layer\.(?P<param>weight|bias)", "copy", None),
    (r"\.(?P<param>weight|bias)", "plain", None),
)
_ROLE_PATTERNS = [(re.compile(rf"^(?P<module>.+?){suffix}$"), role, param)
                  for suffix, role, param in _ROLES]

# init_lora_weights values whose training rewrote the base weights (the adapter is relative
# to a residual base we do not have), by prefix.
_BASE_CHANGING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga")
# LoRA variants whose merge is not W + s*B@A (or that peft cannot merge at all).
_UNSUPPORTED_VARIANTS = {
    "arrow_config": "Arrow routing",
    "use_bdlora": "block-diagonal (BD-LoRA)",
    "velora_config": "VeLoRA",
    "monteclora_config": "MonteCLoRA",
    "kasa_config": "KaSA",
}
_EMBEDDING_MODULES = ("embed_tokens", "lm_head")  # peft's EMBEDDING_LAYER_NAMES
_CLASSIFIER_HEADS = ("score", "classifier")  # peft's SEQ_CLS_HEAD_NAMES, saved whole


# ---------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AdapterConfig:
    """The adapter_config.json fields that decide how an adapter merges."""

    r: int
    lora_alpha: float
    use_rslora: bool
    use_dora: bool
    fan_in_fan_out: bool
    lora_bias: bool
    bias: str
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    modules_to_save: tuple[str, ...]
    trainable_token_indices: list[int] | dict[str, list[int]] | None
    ensure_weight_tying: bool
    peft_version: str | None
    raw: dict = field(default_factory=dict, compare=False)  # the file, for the manifest


def read_config(adapter_dir: Path) -> AdapterConfig:
    """Parse adapter_config.json and refuse what cannot be merged into the original base."""
    path = adapter_dir / CONFIG_NAME
    where = f"{adapter_dir.name}/{CONFIG_NAME}"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"{adapter_dir}: no {CONFIG_NAME} (not a PEFT adapter directory)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{where}: not a JSON object")
    _refuse_unmergeable(raw, where)
    r = raw.get("r", 8)
    alpha = raw.get("lora_alpha", 8)
    if not (isinstance(r, int) and r > 0) or not isinstance(alpha, (int, float)):
        raise InputError(f"{where}: r={r!r} and lora_alpha={alpha!r} must be a positive integer "
                         "and a number")
    return AdapterConfig(
        r=r,
        lora_alpha=alpha,
        use_rslora=bool(raw.get("use_rslora")),
        use_dora=bool(raw.get("use_dora")),
        fan_in_fan_out=bool(raw.get("fan_in_fan_out")),
        lora_bias=bool(raw.get("lora_bias")),
        bias=raw.get("bias") or "none",
        rank_pattern=_pattern_dict(raw, "rank_pattern", where),
        alpha_pattern=_pattern_dict(raw, "alpha_pattern", where),
        modules_to_save=tuple(raw.get("modules_to_save") or ()),
        trainable_token_indices=raw.get("trainable_token_indices"),
        ensure_weight_tying=bool(raw.get("ensure_weight_tying")),
        peft_version=raw.get("peft_version"),
        raw=raw,
    )


def _refuse_unmergeable(raw: dict, where: str) -> None:
    peft_type = raw.get("peft_type")
    if peft_type != "LORA":
        raise InputError(f"{where}: peft_type is {peft_type!r}, not 'LORA'; only LoRA adapters "
                         "can be merged")
    init = raw.get("init_lora_weights", True)
    if isinstance(init, str) and init.lower().startswith(_BASE_CHANGING_INITS):
        raise InputError(f"{where}: init_lora_weights={init!r} rewrites the base weights during "
                         "training, so the adapter cannot be merged into the original base "
                         "(convert it to a plain LoRA with peft first)")
    if raw.get("use_qalora"):
        raise InputError(f"{where}: use_qalora=true (QA-LoRA pools its input, its delta is not "
                         "B @ A) cannot be merged")
    if raw.get("layer_replication"):
        raise InputError(f"{where}: layer_replication={raw['layer_replication']} duplicates base "
                         "layers; it cannot be merged into the original base")
    if raw.get("alora_invocation_tokens"):
        raise InputError(f"{where}: alora_invocation_tokens is set: an Activated LoRA acts only "
                         "after its invocation tokens and cannot be merged")
    if raw.get("target_parameters"):
        raise InputError(f"{where}: target_parameters={raw['target_parameters']} (LoRA on raw "
                         "parameters, e.g. MoE experts) is not supported")
    for option, variant in _UNSUPPORTED_VARIANTS.items():
        if raw.get(option):
            raise InputError(f"{where}: {option} is set: the {variant} LoRA variant is not "
                             "supported")
    bias = raw.get("bias") or "none"
    if bias not in ("none", "all", "lora_only"):
        raise InputError(f"{where}: bias={bias!r} is not one of 'none', 'all', 'lora_only'")


def _pattern_dict(raw: dict, option: str, where: str) -> dict:
    value = raw.get(option) or {}
    if not isinstance(value, dict):
        raise InputError(f"{where}: {option} must be an object, not {type(value).__name__}")
    for key in value:
        try:
            re.compile(key)
        except re.error as exc:
            raise InputError(f"{where}: {option} key {key!r} is not a valid regex ({exc})") from exc
    return dict(value)


# ---------------------------------------------------------------------------- rank and alpha


def pattern_rule(peft_version: str | None) -> str | None:
    """Which rank_pattern/alpha_pattern matching rule the training peft used: "0.15" (peft >=
    0.15), "0.14", "0.13" (older), or None when the config does not say (peft < 0.18 did not
    write peft_version)."""
    match = re.match(r"^\s*(\d+)\.(\d+)", peft_version or "")
    if match is None:
        return None
    version = (int(match.group(1)), int(match.group(2)))
    if version >= (0, 15):
        return "0.15"
    return "0.14" if version == (0, 14) else "0.13"


def _first_match(keys: list[str], module: str, rule: str) -> str | None:
    for key in keys:
        # >= 0.15: the key may match the whole path (PR #2419); before: only after a dot.
        pattern = rf"(.*\.)?({key})$" if rule == "0.15" else rf".*\.{key}$"
        if re.match(pattern, module):
            return key
    return None


def rank_and_alpha(config: AdapterConfig, module: str, rule: str) -> tuple[int, float]:
    """r and lora_alpha of one module (its path in the training model) under a peft rule."""
    if rule == "0.13":
        # peft <= 0.13 looked up one key in rank and alpha keys together, then used it for
        # both: an alpha_pattern entry was ignored when a rank_pattern key matched first.
        keys = [*config.rank_pattern, *config.alpha_pattern]
        key = _first_match(keys, module, rule)
        return (config.rank_pattern.get(key, config.r),
                config.alpha_pattern.get(key, config.lora_alpha))
    r_key = _first_match(list(config.rank_pattern), module, rule)
    a_key = _first_match(list(config.alpha_pattern), module, rule)
    return (config.rank_pattern.get(r_key, config.r),
            config.alpha_pattern.get(a_key, config.lora_alpha))


def _module_rank_and_alpha(config: AdapterConfig, module: str, where: str) -> tuple[int, float]:
    rule = pattern_rule(config.peft_version)
    if rule is not None:
        return rank_and_alpha(config, module, rule)
    results = {r: rank_and_alpha(config, module, r) for r in ("0.15", "0.14", "0.13")}
    new = results["0.15"]
    for rule_name, old in results.items():
        if old != new:
            raise InputError(
                f"{where}: rank_pattern/alpha_pattern give {module} r={new[0]}, "
                f"lora_alpha={new[1]} under peft >= 0.15 but r={old[0]}, lora_alpha={old[1]} "
                f"under peft {rule_name}, and there is no peft_version; add \"peft_version\" "
                "(the peft it was trained with) to adapter_config.json")
    return new


def scale_of(config: AdapterConfig, r: int, alpha: float) -> float:
    """peft's scaling: alpha / r, or alpha / sqrt(r) with use_rslora (in double precision)."""
    return alpha / math.sqrt(r) if config.use_rslora else alpha / r


# ---------------------------------------------------------------------------- base names


def core_name(name: str) -> str:
    """A tensor name without the wrapper prefix that differs between architectures."""
    for prefix in _WRAPPER_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def tied_embedding(base_names: Mapping[str, object] | list[str]) -> str | None:
    """The input embedding an absent lm_head.weight is tied to, or None (the base has its own
    lm_head, is a classifier, or has no single token embedding)."""
    names = list(base_names)
    # A sequence classifier has no language-model head to tie (its config may still say so).
    if HEAD in names or any(core_name(n).split(".")[0] in _CLASSIFIER_HEADS for n in names):
        return None
    embeddings = [n for n in names if core_name(n) == "embed_tokens.weight"]
    return embeddings[0] if len(embeddings) == 1 else None


class _Resolver:
    """Finds the base tensor an adapter module path names, across wrapper prefixes."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], where: str) -> None:
        self.shapes = shapes
        self.where = where
        self.by_core: dict[str, list[str]] = {}
        for name in shapes:
            self.by_core.setdefault(core_name(name), []).append(name)

    def resolve(self, key: str, name: str) -> str:
        if name in self.shapes:
            return name
        candidates = self.by_core.get(core_name(name), [])
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            raise InputError(f"{self.where}: tensor {key} matches several base tensors "
                             f"({', '.join(sorted(candidates))})")
        raise InputError(f"{self.where}: tensor {key} matches no base tensor ({name} not found; "
                         "adapter for another base?)")


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class _Key:
    key: str  # as in the file
    module: str  # module path in the training model
    role: str
    param: str  # the module's parameter it concerns: "weight" or "bias"


def _parse_key(key: str, config: AdapterConfig, where: str) -> _Key:
    path = key.removeprefix(_PEFT_PREFIX)
    for pattern, role, param in _ROLE_PATTERNS:
        match = pattern.match(path)
        if match is None:
            continue
        module = match.group("module")
        param = param or match.group("param")
        if role == "plain":
            role = _plain_role(module, param, config)
            if role is None:
                raise InputError(f"{where}: tensor {key} is neither a LoRA tensor nor a module "
                                 "in modules_to_save (unexpected key)")
        return _Key(key, module, role, param)
    raise InputError(f"{where}: tensor {key} is not a LoRA tensor (unexpected key)")


def _plain_role(module: str, param: str, config: AdapterConfig) -> str | None:
    """A key without a LoRA suffix: a saved module (modules_to_save, or a classifier head,
    which peft adds to modules_to_save itself), a trained bias (bias="all"/"lora_only"), or
    an embedding peft saved because the vocabulary was resized."""
    if any(re.match(rf"(^|.*\.){re.escape(m)}($|\..*)", module) for m in config.modules_to_save):
        return "replace"
    if param == "bias" and config.bias != "none":
        return "replace"
    if module.rsplit(".", 1)[-1] in (*_EMBEDDING_MODULES, *_CLASSIFIER_HEADS):
        return "replace"
    return None


# ---------------------------------------------------------------------------- targets


@dataclass
class _Target:
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
class _Shapes:
    """Shape lookups of the adapter file, for validation before any data is read."""

    file: SafetensorsFile

    def __call__(self, key: str) -> tuple[int, ...]:
        return self.file.tensors[key].shape


class Adapter:
    """A loaded, validated adapter; `apply` merges it into one base tensor at a time."""

    def __init__(self, path: Path, config: AdapterConfig, file: SafetensorsFile,
                 targets: dict[str, _Target], tied: str | None, consumed: set[str]) -> None:
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

    def output_shape(self, name: str, shape: tuple[int, ...]) -> tuple[int, ...]:
        target = self._target_for(name)
        return shape if target is None else target.out_shape

    def _target_for(self, name: str) -> _Target | None:
        if name == HEAD and self.head_follows_embedding:
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
        self.relative_changes[name] = _relative_change(before, weight)
        return weight

    def _merge(self, target: _Target, weight: np.ndarray) -> np.ndarray:
        keys = target.keys
        replacement = keys.get("replace") or keys.get("copy")
        if replacement is not None:
            weight = self._read(replacement)
        if target.kind in ("linear", "embedding"):
            weight = self._merge_lora(target, weight)
        elif target.kind == "tokens":
            weight = weight.copy()
            weight[list(target.token_indices)] = self._read(keys["tokens"])
        elif target.kind == "bias":
            # peft: base_layer.bias + lora_B.bias * scaling
            weight = weight + self._read(keys["lora_bias"]) * np.float32(target.scale)
        return weight

    def _merge_lora(self, target: _Target, weight: np.ndarray) -> np.ndarray:
        embedding = target.kind == "embedding"
        a_role, b_role = ("emb_A", "emb_B") if embedding else ("A", "B")
        a, b = self._read(target.keys[a_role]), self._read(target.keys[b_role])
        # peft: transpose(B @ A, fan_in_fan_out) * scaling (embeddings always transpose),
        # then W + delta. In place, so that an embedding-sized merge holds two tensors, not
        # four: x * s and w + x are the same float32 operations either way.
        transposed = embedding or self.config.fan_in_fan_out
        merged = a.T @ b.T if transposed else b @ a
        merged *= np.float32(target.scale)
        merged += weight
        if "magnitude" not in target.keys:
            return merged
        # DoRA: the norm runs over the input dimension of a linear layer (rows of the
        # (out, in) weight, columns when fan_in_fan_out stores (in, out)) and, for an
        # embedding, over the vocabulary (peft treats embeddings as fan_in_fan_out).
        axis = 0 if transposed else 1
        norm = np.sqrt(_sum_of_squares(merged, axis)).astype(np.float32)
        factor = self._read(target.keys["magnitude"]) / norm
        merged *= factor[None, :] if transposed else factor[:, None]
        return merged

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


_CHUNK_ROWS = 4096  # float64 work arrays stay small whatever the tensor


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


def _relative_change(before: np.ndarray, after: np.ndarray) -> float:
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


# ---------------------------------------------------------------------------- loading


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
    resolver = _Resolver(shapes, where)
    targets: dict[str, _Target] = {}
    for key in file.tensors:
        parsed = _parse_key(key, config, where)
        name = _resolve(resolver, parsed, where)
        target = targets.setdefault(name, _Target(name, parsed.module, shapes[name]))
        # Two keys for one role, or keys reaching one tensor through two module paths.
        clash = target.keys.get(parsed.role) or (
            next(iter(target.keys.values())) if parsed.module != target.module else None)
        if clash is not None:
            raise InputError(f"{where}: base tensor {name} is named twice: by {clash} and {key}")
        target.keys[parsed.role] = key
    consumed = _drop_tied_copies(targets, tied, config, file, where)
    checker = _Validator(config, _Shapes(file), where, adapter_dir.name)
    for target in targets.values():
        checker.check(target)
    return Adapter(adapter_dir, config, file, targets, tied, consumed)


def _resolve(resolver: _Resolver, parsed: _Key, where: str) -> str:
    try:
        return resolver.resolve(parsed.key, f"{parsed.module}.{parsed.param}")
    except InputError:
        if parsed.role != "lora_bias":
            raise
        # peft refuses this merge too: the trained bias has nothing to be added to.
        raise InputError(f"{where}: lora_bias is set but base tensor {parsed.module}.bias does "
                         f"not exist ({parsed.key}); the LoRA bias cannot be merged") from None


def _drop_tied_copies(targets: dict[str, _Target], tied: str | None, config: AdapterConfig,
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


@dataclass(frozen=True)
class _Validator:
    config: AdapterConfig
    shape_of: _Shapes
    where: str
    adapter_name: str

    def check(self, target: _Target) -> None:
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

    def _check_replacement(self, target: _Target, key: str) -> tuple[int, ...]:
        saved = self.shape_of(key)
        base = target.shape
        # A replacement may resize a matrix's rows (the vocabulary); nothing else may change.
        if len(saved) != len(base) or saved[1:] != base[1:] or (len(base) < 2 and saved != base):
            raise InputError(f"{self.where}: tensor {key} has shape {saved} but base tensor "
                             f"{target.name} has shape {base} (adapter for another base?)")
        return saved

    def _check_lora(self, target: _Target, shape: tuple[int, ...]) -> None:
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
        r, alpha = _module_rank_and_alpha(self.config, target.module,
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

    def _check_magnitude(self, target: _Target, shape: tuple[int, ...], embedding: bool) -> None:
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

    def _check_tokens(self, target: _Target, shape: tuple[int, ...]) -> None:
        key = target.keys["tokens"]
        indices = _token_indices(self.config, target.module)
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

    def _check_bias(self, target: _Target) -> None:
        key = target.keys["lora_bias"]
        if not self.config.lora_bias:
            raise InputError(f"{self.where}: tensor {key} is a LoRA bias but lora_bias is not set "
                             "in adapter_config.json")
        if self.shape_of(key) != target.shape:
            raise InputError(f"{self.where}: tensor {key} has shape {self.shape_of(key)} but base "
                             f"tensor {target.name} has shape {target.shape}")
        # The bias merges with the scale of its module's LoRA weight.
        r, alpha = _module_rank_and_alpha(self.config, target.module,
                                          f"{self.adapter_name}/{CONFIG_NAME}")
        target.kind = "bias"
        target.scale = scale_of(self.config, r, alpha)


def _token_indices(config: AdapterConfig, module: str) -> list[int] | None:
    indices = config.trainable_token_indices
    if isinstance(indices, list):
        return indices  # the list form targets the input embedding
    if isinstance(indices, dict):
        for name, values in indices.items():
            if module == name or module.endswith(f".{name}"):
                return list(values)
    return None
