"""The conversion pipeline: sources -> merge -> F16 GGUF -> calibrate -> quantize -> verify
and quality report -> outputs.

Each step hands its result to the next; nothing is re-read. Everything is written inside a
staging directory and moved under its final name only when the whole job succeeded.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from converters.checkpoint.config import ModelConfig, read_model_config
from converters.checkpoint.safetensors_io import Checkpoint
from converters.checkpoint.sources import Source, resolve_source
from converters.errors import InputError
from converters.gguf.architectures import architecture_for
from converters.gguf.vocab import tokenizer_directory
from converters.gguf.writer import Provenance, write_gguf
from converters.llama_eval import Session
from converters.llama_runtime import check_threads
from converters.merge.merged_weights import MergedWeights, load_adapters
from converters.ollama.modelfile import Modelfile, read_modelfile, retarget_modelfile
from converters.outputs.manifest import (
    MANIFEST_NAME,
    build_manifest,
    output_entry,
    valid_model_name,
    write_manifest,
)
from converters.outputs.staging import Staging
from converters.quantize.calibration import (
    CalibrationSet,
    CalibrationText,
    Formatter,
    chunks,
    default_set,
    load_set,
    read_calibration_file,
    read_input_format,
    set_calibration_text,
)
from converters.quantize.imatrix import (
    CHUNK_SIZE,
    Collector,
    ImportanceMatrix,
    read_imatrix,
    write_imatrix,
)
from converters.quantize.imatrix import collect as collect_imatrix
from converters.quantize.quantizer import QUANT_FTYPES, quantize
from converters.quantize.types import IMATRIX_OFF, IMATRIX_QUANTS, QUANT_CHOICES
from converters.verify.checks import VerificationError, verify_gguf
from converters.verify.quality import HeldOut, Reference, build_report, drift, reference
from converters.verify.unmerge import UNMERGE_SCALE, write_unmerging_adapter

# Unquantized type written before quantizing: F16 keeps 10 mantissa bits, so the small
# deltas a LoRA adds to a bf16 weight survive the rounding better than with BF16.
INTERMEDIATE_TYPE = "F16"
# Calibration: one's own text needs two chunks, as llama-imatrix requires; a shipped set is
# read up to MAX_SET_CHUNKS chunks (a tokenizer with few merges cuts its text into more
# tokens than a real one would). The quality report reads up to MAX_HELD_OUT_CHUNKS.
MIN_OWN_CHUNKS = 2
MAX_SET_CHUNKS = 4
MAX_HELD_OUT_CHUNKS = 2
CLASSIFIER_CONTEXT = 2048  # a classifier reads each held-out input whole
# How the quality report got the base without the adapters (manifest: quality.base_method).
BASE_UNMERGED = "the adapters taken out of the merged F16 (LoRA adapter at scale -1)"
BASE_WRITTEN = "written as F16 from the checkpoint"


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
    # Importance matrix: None collects one on calibration text for the K-quants, "off"
    # quantizes without, anything else is an imatrix file (llama-imatrix's GGUF or .dat).
    imatrix: str | None = None
    imatrix_out: Path | None = None  # also write the matrix used, in llama.cpp's format
    calibration: Path | None = None  # one's own plain calibration text
    calibration_set: str | None = None  # a shipped set (converters/quantize/calibration)
    input_format: Path | None = None  # a classifier's text template (intent-safety.json)
    quality: bool = True  # the quality report (with verification)


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

    def bar(self, description: str, total: int, unit: str = "B"):
        from tqdm import tqdm

        scaled = unit == "B"
        return tqdm(total=total, desc=description, unit=unit, unit_scale=scaled,
                    unit_divisor=1024 if scaled else 1000, disable=not self.enabled,
                    file=sys.stderr, dynamic_ncols=True, leave=True)


@dataclass(frozen=True)
class _Inputs:
    """Everything read from the request's files before any work: a bad file fails now."""

    modelfile: Modelfile | None
    imatrix: ImportanceMatrix | None  # --imatrix FILE
    own_text: CalibrationText | None  # --calibration FILE
    input_format: Mapping[str, str] | None


def convert(request: ConvertRequest, progress: Progress | None = None) -> ConvertResult:
    """Run the whole pipeline. Bad input raises InputError; nothing is left under a final
    name unless every step succeeded."""
    progress = progress or Progress()
    _check_request(request)
    inputs = _read_inputs(request)
    started = time.perf_counter()
    base, adapters = _resolve(request)
    config = read_model_config(base.path)
    calibration_set = load_set(request.calibration_set or default_set(config.is_classifier))
    resolved = time.perf_counter() - started
    with Checkpoint(base.path) as checkpoint, Staging(request.out_dir) as stage:
        job = _Conversion(request, inputs, progress, stage, checkpoint, config, base, adapters,
                          calibration_set)
        job.timings["resolve"] = resolved
        files = job.run()
        job.timings["total"] = time.perf_counter() - started
        manifest = job.manifest(files)
        write_manifest(stage.path(MANIFEST_NAME), manifest)
        if request.imatrix_out is not None and job.matrix is not None:
            write_imatrix(job.matrix, request.imatrix_out)
        committed = stage.commit([n for n, _ in files] + [MANIFEST_NAME])
    job.timings["total"] = time.perf_counter() - started
    return ConvertResult(committed, manifest, _rounded(job.timings))


def _rounded(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


def _check_request(request: ConvertRequest) -> None:
    if request.quant not in QUANT_CHOICES:
        raise InputError(f"unknown quantization {request.quant}; choose from "
                         f"{', '.join(QUANT_CHOICES)}")
    if not valid_model_name(request.name):
        raise InputError(f"--name {request.name!r}: use letters, digits, '.', '_', '+', '-'")
    check_threads(request.threads)
    if request.modelfile and not request.modelfile.is_file():
        raise InputError(f"{request.modelfile}: no such Modelfile")
    if request.imatrix not in (None, IMATRIX_OFF) and not Path(str(request.imatrix)).is_file():
        raise InputError(f"--imatrix {request.imatrix}: no such file (or give 'off')")
    if request.imatrix == IMATRIX_OFF and request.imatrix_out is not None:
        raise InputError("--imatrix-out needs an importance matrix; --imatrix is off")
    if request.imatrix_out is not None and not request.imatrix_out.parent.is_dir():
        raise InputError(f"--imatrix-out {request.imatrix_out}: no such directory "
                         f"{request.imatrix_out.parent}")
    if request.calibration is not None and not request.calibration.is_file():
        raise InputError(f"--calibration {request.calibration}: no such file")
    collects = _collects(request)
    if request.calibration is not None and not collects:
        raise InputError("--calibration is text to collect an importance matrix on; none is "
                         f"collected with --quant {request.quant}"
                         + (f" and --imatrix {request.imatrix}" if request.imatrix else ""))
    if request.imatrix_out is not None and request.imatrix is None and not collects:
        raise InputError(f"--imatrix-out: --quant {request.quant} uses no importance matrix")


def _collects(request: ConvertRequest) -> bool:
    """Whether an importance matrix is collected: by default, for the K-quants."""
    return request.imatrix is None and request.quant in IMATRIX_QUANTS


def _read_inputs(request: ConvertRequest) -> _Inputs:
    supplied = request.imatrix not in (None, IMATRIX_OFF)
    return _Inputs(
        modelfile=read_modelfile(request.modelfile) if request.modelfile else None,
        imatrix=read_imatrix(Path(str(request.imatrix))) if supplied else None,
        own_text=read_calibration_file(request.calibration) if request.calibration else None,
        input_format=read_input_format(request.input_format) if request.input_format else None)


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


class _Conversion:
    """One conversion inside its staging directory: each step hands its result to the next
    (merge -> F16 GGUF -> calibrate on the F16 -> quantize with the matrix -> verify and the
    quality report -> outputs); `timings` gets each step's seconds."""

    def __init__(self, request: ConvertRequest, inputs: _Inputs, progress: Progress,
                 stage: Staging, checkpoint: Checkpoint, config: ModelConfig, base: Source,
                 adapters: list[Source], calibration_set: CalibrationSet) -> None:
        self.request, self.inputs, self.progress, self.stage = request, inputs, progress, stage
        self.checkpoint, self.config, self.base, self.adapters = checkpoint, config, base, adapters
        self.calibration_set = calibration_set
        loaded = load_adapters(checkpoint, [a.path for a in adapters],
                               tie_word_embeddings=bool(config.get("tie_word_embeddings")))
        self.weights = MergedWeights(checkpoint, loaded)
        self.tokenizer_dir = tokenizer_directory(base.path, [a.path for a in adapters])
        self.timings: dict[str, float] = {}
        self.matrix: ImportanceMatrix | None = inputs.imatrix
        self.collected = False
        self.held_out: HeldOut | None = None
        self.reference: Reference | None = None
        # The base's figures when computed with the F16 still loaded (_unmerged_base_drift).
        self.base_figures: dict[str, float] | None = None
        self.base_method = BASE_WRITTEN
        self.verification: dict[str, Any] | None = None
        self.quality: dict[str, Any] | None = None

    @contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started

    @property
    def _quantized(self) -> bool:
        return self.request.quant in QUANT_FTYPES

    @property
    def _wants_quality(self) -> bool:
        return self.request.quality and self.request.verify and self._quantized

    def run(self) -> list[tuple[str, str]]:
        """Returns [(file name, role)], the final model first."""
        request = self.request
        out_type = INTERMEDIATE_TYPE if self._quantized else request.quant
        with self._timed("merge_write"):
            unquantized = self._write(f"{request.name}.{out_type}.gguf", self.weights, out_type,
                                      self.adapters, "merge + write GGUF")
        if not self._quantized:
            files = [(unquantized, "model")]
        else:
            collect = _collects(request)
            if collect or self._wants_quality:
                self._calibrate(self.stage.path(unquantized), collect)
            final = self._quantize(unquantized)
            files = [(final, "model")]
            if request.keep_intermediate:
                files.append((unquantized, "intermediate"))
            else:
                self.stage.path(unquantized).unlink()
        if request.verify:
            with self._timed("verify"):
                self._verify(self.stage.path(files[0][0]))
        if self._wants_quality:
            with self._timed("quality"):
                self.quality = self._report(self.stage.path(files[0][0]))
        if self.inputs.modelfile is not None:
            retarget_modelfile(self.inputs.modelfile, self.stage.path("Modelfile"), files[0][0])
            files.append(("Modelfile", "modelfile"))
        return files

    def _write(self, name: str, weights: MergedWeights, out_type: str,
               adapters: list[Source], label: str) -> str:
        with self.progress.bar(label, 0) as bar:
            write_gguf(self.stage.path(name), weights, self.config, self.tokenizer_dir,
                       self.base.path, out_type, _provenance(self.request, self.base, adapters),
                       bar.update, on_total=lambda total: setattr(bar, "total", total))
        return name

    # ------------------------------------------------------------------ calibrate
    def _session(self, path: Path, callback: Collector | None = None) -> Session:
        classifier = self.config.is_classifier
        return Session(path, n_ctx=CLASSIFIER_CONTEXT if classifier else CHUNK_SIZE,
                       classifier=classifier, callback=callback, threads=self.request.threads)

    def _calibrate(self, f16: Path, collect: bool) -> None:
        """Read the F16 once: collect the importance matrix on calibration text, and the
        reference the quality report compares against on held-out text. Timed apart
        (`calibrate`, `quality_reference`): the report's cost is not the matrix's."""
        collector = Collector() if collect else None
        with self._session(f16, collector) as session:
            formatter = self._formatter(session)
            if collector is not None:
                text = self.inputs.own_text or set_calibration_text(self.calibration_set,
                                                                    formatter)
                token_chunks = self._calibration_chunks(session, text)
                with self._timed("calibrate"), \
                        self.progress.bar("calibrate (importance matrix)", len(token_chunks),
                                          "chunk") as bar:
                    self.matrix = collect_imatrix(session.run, collector, token_chunks,
                                                  text.dataset, bar.update)
                self.collected = True
            if self._wants_quality:
                self.held_out = self._held_out(session, formatter)
                with self._timed("quality_reference"), \
                        self.progress.bar("quality: F16 reference", len(self.held_out.inputs),
                                          self.held_out.unit) as bar:
                    self.reference = reference(session, self.held_out,
                                               self.stage.path("reference.f32"), bar.update)
                if self.weights.adapters:
                    self.base_figures = self._unmerged_base_drift(session)

    def _formatter(self, session: Session) -> Formatter:
        system = self.inputs.modelfile.system if self.inputs.modelfile else None
        fmt = self.inputs.input_format or {}
        return Formatter(chat_template=session.metadata("tokenizer.chat_template"),
                         bos_token=session.token_text(session.bos),
                         eos_token=session.token_text(session.eos), system=system,
                         text_template=fmt.get("text_template"),
                         task_description=fmt.get("task_description", ""))

    def _calibration_chunks(self, session: Session, text: CalibrationText) -> list[list[int]]:
        own = self.inputs.own_text
        tokens = session.tokenize(text.text, add_special=True, parse_special=text.parse_special)
        token_chunks = chunks(tokens, CHUNK_SIZE, session.bos if session.adds_bos else None)
        if own is not None and len(token_chunks) < MIN_OWN_CHUNKS:
            raise InputError(f"--calibration {self.request.calibration}: {len(tokens)} tokens; "
                             f"at least {MIN_OWN_CHUNKS * CHUNK_SIZE} are needed (chunks of "
                             f"{CHUNK_SIZE}, as llama-imatrix requires)")
        if not token_chunks:
            raise InputError(f"calibration set {self.calibration_set.name}: fewer than "
                             f"{CHUNK_SIZE} tokens with this vocabulary")
        return token_chunks if own is not None else token_chunks[:MAX_SET_CHUNKS]

    def _held_out(self, session: Session, formatter: Formatter) -> HeldOut:
        samples = self.calibration_set.held_out
        name = self.calibration_set.name
        if self.config.is_classifier:
            inputs = [session.tokenize(formatter.render(s), add_special=False,
                                       parse_special=True) for s in samples]
            longest = max(len(i) for i in inputs)
            if longest > session.n_ctx:  # the shipped sets fit (tested)
                raise RuntimeError(f"calibration set {name}: a held-out input of {longest} "
                                   f"tokens exceeds {session.n_ctx}")
            return HeldOut(name, True, inputs)
        tokens = session.tokenize(formatter.joined(samples), add_special=True,
                                  parse_special=True)
        bos = session.bos if session.adds_bos else None
        return HeldOut(name, False, chunks(tokens, CHUNK_SIZE, bos, keep_tail=True)
                       [:MAX_HELD_OUT_CHUNKS])

    # ------------------------------------------------------------------ quantize, verify
    def _quantize(self, unquantized: str) -> str:
        final = f"{self.request.name}.{self.request.quant}.gguf"
        with self._timed("quantize"), \
                self.progress.bar(f"quantize {self.request.quant}", 1) as bar:
            def report(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                quantize(self.stage.path(unquantized), self.stage.path(final), self.request.quant,
                         threads=self.request.threads, imatrix=self.matrix,
                         imatrix_file=self._imatrix_label(), progress=report)
            except RuntimeError as exc:  # llama.cpp's reason, e.g. a tensor it cannot quantize
                raise InputError(str(exc)) from exc
        return final

    def _imatrix_label(self) -> str:
        if self.inputs.imatrix is not None:
            return str(self.request.imatrix)
        return "collected by amicus convert" if self.collected else ""

    def _verify(self, path: Path) -> None:
        try:
            self.verification = verify_gguf(path, self.tokenizer_dir,
                                            classifier=self.config.is_classifier).as_dict()
        except VerificationError as exc:
            raise VerificationError(f"verification failed: {exc}") from exc

    # ------------------------------------------------------------------ quality report
    def _report(self, final: Path) -> dict[str, Any]:
        assert self.held_out is not None and self.reference is not None
        with self._session(final) as session, \
                self.progress.bar("quality: quantized", len(self.held_out.inputs),
                                  self.held_out.unit) as bar:
            quantized = drift(session, self.held_out, self.reference, bar.update)
        base: dict[str, float] | None = self.base_figures
        note: str | None = None
        if base is None and self.weights.adapters:
            base, note = self._base_drift()
        self.stage.path("reference.f32").unlink(missing_ok=True)
        report = build_report(self.held_out, quantized, base, note)
        if base is not None:
            report["base_method"] = self.base_method
        return report

    def _unmerged_base_drift(self, session: Session) -> dict[str, float] | None:
        """The base compared with the reference by taking the adapters back out of the F16
        already loaded (converters.verify.unmerge); None when they cannot be taken out
        that way, and the base is written instead (`_base_drift`)."""
        assert self.held_out is not None and self.reference is not None
        path = self.stage.path(f"{self.request.name}.unmerge.gguf")
        try:
            with self._timed("quality_base"):
                try:
                    if not write_unmerging_adapter(self.weights.adapters,
                                                   architecture_for(self.config), path):
                        self.base_method = f"{BASE_WRITTEN} (the adapters are not plain LoRA)"
                        return None
                    session.use_adapter(path, UNMERGE_SCALE)
                except (OSError, InputError):  # no room for it, or llama.cpp refused it
                    self.base_method = f"{BASE_WRITTEN} (the unmerging adapter failed)"
                    return None
                with self.progress.bar("quality: base (adapters taken out)",
                                       len(self.held_out.inputs), self.held_out.unit) as bar:
                    figures = drift(session, self.held_out, self.reference, bar.update)
                session.use_adapter(None)
            self.base_method = BASE_UNMERGED
            return figures
        finally:
            path.unlink(missing_ok=True)

    def _base_drift(self) -> tuple[dict[str, float] | None, str | None]:
        """Write the base without the adapters as F16 (the merged F16 is gone by now unless
        kept, so the disk holds one F16 at a time) and compare it with the reference: for
        adapters whose changes `_unmerged_base_drift` cannot take back out."""
        assert self.held_out is not None and self.reference is not None
        name = f"{self.request.name}.base.{INTERMEDIATE_TYPE}.gguf"
        try:
            with self._timed("quality_base_write"):
                self._write(name, MergedWeights(self.checkpoint, []), INTERMEDIATE_TYPE, [],
                            "quality: base F16")
        except InputError as exc:  # e.g. adapters that resized the vocabulary
            return None, f"base not compared: {exc}"
        try:
            with self._session(self.stage.path(name)) as session:
                if session.n_vocab != self.reference.n_vocab:
                    return None, (f"base not compared: its vocabulary has {session.n_vocab} "
                                  f"tokens, the merged model's {self.reference.n_vocab}")
                with self.progress.bar("quality: base", len(self.held_out.inputs),
                                       self.held_out.unit) as bar:
                    return drift(session, self.held_out, self.reference, bar.update), None
        finally:
            self.stage.path(name).unlink(missing_ok=True)

    # ------------------------------------------------------------------ manifest
    def manifest(self, files: list[tuple[str, str]]) -> dict[str, Any]:
        outputs = [output_entry(self.stage.path(n), role) for n, role in files]
        return build_manifest(
            name=self.request.name, architecture=self.config.architecture,
            gguf_architecture=self.config.gguf_arch, quantization=self.request.quant,
            sources=_describe_sources(self.base, self.adapters, self.weights), outputs=outputs,
            verification=self.verification, merge=_merge_summary(self.weights),
            demo=self.request.demo, classifier=self.config.is_classifier,
            calibration=self._calibration_summary(), quality=self.quality,
            timings=_rounded(self.timings))

    def _calibration_summary(self) -> dict[str, Any]:
        if self.matrix is None:
            reason = ("--imatrix off" if self.request.imatrix == IMATRIX_OFF
                      else f"{self.request.quant} does not use one")
            return {"imatrix": "off", "reason": reason}
        summary: dict[str, Any] = {"imatrix": "collected" if self.collected else "file",
                                   **self.matrix.summary()}
        if self.collected:
            summary["set"] = None if self.inputs.own_text else self.calibration_set.name
        else:
            summary["file"] = str(self.request.imatrix)
        if self.request.imatrix_out is not None:
            summary["written_to"] = str(self.request.imatrix_out)
        return summary


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
