"""adapter_config.json: the fields that decide how an adapter merges, refusals by name, and
the rank and alpha of each module (rank_pattern / alpha_pattern under the rule of the peft
version that trained it)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from converters.errors import InputError

CONFIG_NAME = "adapter_config.json"

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
    _check_fields(raw, where)
    return AdapterConfig(
        r=8 if raw.get("r") is None else raw["r"],  # peft's defaults, as for a missing field
        lora_alpha=8 if raw.get("lora_alpha") is None else raw["lora_alpha"],
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


def _rank(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


def _alpha(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _indices(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)


# The fields the merge reads, and what each must be when present and not null.
_FIELD_CHECKS: dict[str, tuple[Callable[[object], bool], str]] = {
    "r": (_rank, "a positive integer"),
    "lora_alpha": (_alpha, "a finite number"),
    **{flag: ((lambda v: isinstance(v, bool)), "true or false")
       for flag in ("use_rslora", "use_dora", "fan_in_fan_out", "lora_bias",
                    "ensure_weight_tying")},
    "rank_pattern": ((lambda v: isinstance(v, dict) and all(map(_rank, v.values()))),
                     "an object of positive integers"),
    "alpha_pattern": ((lambda v: isinstance(v, dict) and all(map(_alpha, v.values()))),
                      "an object of finite numbers"),
    "modules_to_save": (_strings, "a list of module names"),
    "target_modules": ((lambda v: isinstance(v, str) or _strings(v)),
                       "a list of module names or a regex"),
    "trainable_token_indices": ((lambda v: _indices(v) or (isinstance(v, dict) and all(
        map(_indices, v.values())))), "a list of token ids, or an object of such lists"),
    "peft_version": ((lambda v: isinstance(v, str)), "a version string"),
}


def _check_fields(raw: dict, where: str) -> None:
    for name, (valid, expected) in _FIELD_CHECKS.items():
        value = raw.get(name)
        if value is not None and not valid(value):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise InputError(f"{where}: {name}={shown} must be {expected}")


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
    if not isinstance(bias, str) or bias not in ("none", "all", "lora_only"):
        raise InputError(f"{where}: bias={bias!r} is not one of 'none', 'all', 'lora_only'")


def _pattern_dict(raw: dict, option: str, where: str) -> dict:
    value = raw.get(option) or {}
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
        key = _first_match(keys, module, rule) or ""
        return (config.rank_pattern.get(key, config.r),
                config.alpha_pattern.get(key, config.lora_alpha))
    r_key = _first_match(list(config.rank_pattern), module, rule) or ""
    a_key = _first_match(list(config.alpha_pattern), module, rule) or ""
    return (config.rank_pattern.get(r_key, config.r),
            config.alpha_pattern.get(a_key, config.lora_alpha))


def module_rank_and_alpha(config: AdapterConfig, module: str, where: str) -> tuple[int, float]:
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
