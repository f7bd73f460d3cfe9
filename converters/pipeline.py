"""The conversion pipeline: sources -> merge -> GGUF -> quantize -> verify -> outputs.

Each step hands its result to the next; nothing is re-read. Everything is written inside a
staging directory and moved under its final name only when the whole job succeeded.
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.checkpoint.config import ModelConfig, read_model_config
from converters.checkpoint.safetensors_io import Checkpoint
from converters.checkpoint.sources import Source, resolve_source
from converters.errors import InputError
from converters.gguf.vocab import tokenizer_directory
from converters.gguf.writer import Provenance, write_gguf
from converters.llama_runtime import check_threads
from converters.merge.merged_weights import MergedWeights, load_adapters
from converters.ollama.modelfile import read_modelfile, retarget_modelfile
from converters.outputs.manifest import (
    MANIFEST_NAME,
    build_manifest,
    output_entry,
    valid_model_name,
    write_manifest,
)
from converters.outputs.staging import Staging
from converters.quantize.quantizer import QUANT_FTYPES, quantize
from converters.quantize.types import QUANT_CHOICES
from converters.verify.checks import VerificationError, verify_gguf

# Unquantized type written before quantizing: F16 keeps 10 mantissa bits, so the small
# deltas a LoRA adds to a bf16 weight survive the rounding better than with BF16.
INTERMEDIATE_TYPE = "F16"


@dataclass(frozen=True)
class ConvertRequest:
    base: str
    name: str
    out_dir: Path
    adapters: tuple[str, ...] = ()
    quant: str = "Q4_K_M"
    modelfile: Path | None = None
    keep_intermediate: bool = False
    verify: bool = True
    threads: int | None = None
    demo: bool = False  # random-weight stand-in: said in the manifest and everywhere shown


@dataclass
class ConvertResult:
    outputs: list[Path]
    manifest: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"outputs": [str(p) for p in self.outputs], "seconds": self.seconds,
                "manifest": self.manifest}


class Progress:
    """Progress bars on stderr (tqdm), one per long step."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def bar(self, description: str, total: int):
        from tqdm import tqdm

        return tqdm(total=total, desc=description, unit="B", unit_scale=True,
                    unit_divisor=1024, disable=not self.enabled, file=sys.stderr,
                    dynamic_ncols=True, leave=True)


def convert(request: ConvertRequest, progress: Progress | None = None) -> ConvertResult:
    """Run the whole pipeline. Bad input raises InputError; nothing is left under a final
    name unless every step succeeded."""
    progress = progress or Progress()
    _check_request(request)
    # A bad Modelfile fails now, not after the work; the parsed one is written at the end.
    modelfile = read_modelfile(request.modelfile) if request.modelfile else None
    timings: dict[str, float] = {}
    started = time.perf_counter()
    base, adapters = _resolve(request)
    config = read_model_config(base.path)
    timings["resolve"] = time.perf_counter() - started
    with Checkpoint(base.path) as checkpoint, Staging(request.out_dir) as stage:
        loaded = load_adapters(checkpoint, [a.path for a in adapters],
                               tie_word_embeddings=bool(config.get("tie_word_embeddings")))
        weights = MergedWeights(checkpoint, loaded)
        tokenizer_dir = tokenizer_directory(base.path, [a.path for a in adapters])
        files = _write_and_quantize(request, stage, weights, config, base, adapters,
                                    tokenizer_dir, progress, timings)
        final = stage.path(files[0][0])
        verification = None
        if request.verify:
            t0 = time.perf_counter()
            try:
                verification = verify_gguf(final, tokenizer_dir,
                                           classifier=config.is_classifier).as_dict()
            except VerificationError as exc:
                raise VerificationError(f"verification failed: {exc}") from exc
            timings["verify"] = time.perf_counter() - t0
        if modelfile is not None:
            retarget_modelfile(modelfile, stage.path("Modelfile"), files[0][0])
            files.append(("Modelfile", "modelfile"))
        outputs = [output_entry(stage.path(n), role) for n, role in files]
        manifest = build_manifest(
            name=request.name, architecture=config.architecture,
            gguf_architecture=config.gguf_arch, quantization=request.quant,
            sources=_describe_sources(base, adapters, weights), outputs=outputs,
            verification=verification, merge=_merge_summary(weights), demo=request.demo,
            classifier=config.is_classifier)
        write_manifest(stage.path(MANIFEST_NAME), manifest)
        committed = stage.commit([n for n, _ in files] + [MANIFEST_NAME])
    timings["total"] = time.perf_counter() - started
    return ConvertResult(committed, manifest, {k: round(v, 3) for k, v in timings.items()})


def _check_request(request: ConvertRequest) -> None:
    if request.quant not in QUANT_CHOICES:
        raise InputError(f"unknown quantization {request.quant}; choose from "
                         f"{', '.join(QUANT_CHOICES)}")
    if not valid_model_name(request.name):
        raise InputError(f"--name {request.name!r}: use letters, digits, '.', '_', '+', '-'")
    check_threads(request.threads)
    if request.modelfile and not request.modelfile.is_file():
        raise InputError(f"{request.modelfile}: no such Modelfile")


def _resolve(request: ConvertRequest) -> tuple[Source, list[Source]]:
    base = resolve_source(request.base)
    adapters = [resolve_source(spec) for spec in request.adapters]
    if base.is_adapter:
        raise InputError(f"{request.base} is a PEFT adapter; pass it with --adapter and give "
                         "its base model with --base")
    for adapter in adapters:
        if not adapter.is_adapter:
            raise InputError(f"{adapter.spec} is a full checkpoint, not an adapter; pass it "
                             "with --base")
    return base, adapters


def _write_and_quantize(request: ConvertRequest, stage: Staging, weights: MergedWeights,
                        config: ModelConfig, base: Source, adapters: list[Source],
                        tokenizer_dir: Path, progress: Progress,
                        timings: dict[str, float]) -> list[tuple[str, str]]:
    """Returns [(file name, role)], the final model first."""
    quantized = request.quant in QUANT_FTYPES
    unquantized_type = INTERMEDIATE_TYPE if quantized else request.quant
    unquantized = f"{request.name}.{unquantized_type}.gguf"
    t0 = time.perf_counter()
    with progress.bar("merge + write GGUF", 0) as bar:
        write_gguf(stage.path(unquantized), weights, config, tokenizer_dir, base.path,
                   unquantized_type, _provenance(request, base, adapters), bar.update,
                   on_total=lambda total: setattr(bar, "total", total))
    timings["merge_write"] = time.perf_counter() - t0
    if not quantized:
        return [(unquantized, "model")]
    final = f"{request.name}.{request.quant}.gguf"
    t0 = time.perf_counter()
    with progress.bar(f"quantize {request.quant}", 1) as bar:
        def report(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            quantize(stage.path(unquantized), stage.path(final), request.quant,
                     threads=request.threads, progress=report)
        except RuntimeError as exc:  # llama.cpp's reason, e.g. a tensor it cannot quantize
            raise InputError(str(exc)) from exc
    timings["quantize"] = time.perf_counter() - t0
    if request.keep_intermediate:
        return [(final, "model"), (unquantized, "intermediate")]
    stage.path(unquantized).unlink()
    return [(final, "model")]


def _provenance(request: ConvertRequest, base: Source, adapters: list[Source]) -> Provenance:
    base_name = base.repo_id or base.path.resolve().name
    finetune = ", ".join(a.repo_id or a.path.resolve().name for a in adapters) or None
    license_name = _card_license(base.path)
    for adapter in adapters:
        license_name = _card_license(adapter.path) or license_name
    return Provenance(name=request.name, base_models=((base_name, base.revision),),
                      license=license_name, finetune=finetune)


def _card_license(directory: Path) -> str | None:
    """`license:` from a model card's YAML front matter."""
    card = directory / "README.md"
    if not card.is_file():
        return None
    text = card.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    front = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    match = re.search(r"^license:\s*(\S+)\s*$", front, re.MULTILINE)
    return match.group(1).strip("'\"") if match else None


def _describe_sources(base: Source, adapters: list[Source],
                      weights: MergedWeights) -> list[dict[str, Any]]:
    """The sources, each adapter with the adapter_config.json the merge read."""
    described: list[dict[str, Any]] = [{"role": "base", **base.describe()}]
    for source, loaded in zip(adapters, weights.adapters, strict=True):
        described.append({"role": "adapter", **source.describe(),
                          "adapter_config": loaded.config.raw})
    return described


def _merge_summary(weights: MergedWeights) -> dict[str, Any]:
    """What the merge did, for the manifest: per adapter, how much each tensor moved."""
    changes: dict[str, dict[str, float]] = {}
    for adapter, tensor, change in weights.report():
        changes.setdefault(adapter, {})[tensor] = round(change, 6)
    largest = {a: max(c.values()) if c else 0.0 for a, c in changes.items()}
    return {"adapters": len(weights.adapters), "untied_head": weights.untied,
            "tensors_changed": {a: len(c) for a, c in changes.items()},
            "largest_relative_change": largest}
