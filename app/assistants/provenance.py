"""Building the provenance record of an answer (app.store.provenance) from what produced it.

The one place that knows where each fact comes from: the installed model's manifest (file,
sha256, size, quantization, demo flag), its remembered verification state, the engine
(embedded with its threads and GPU layers, or a server's URL and model name), the
assistant's Modelfile with the conversation's overrides (system prompt, sampling, context),
and Amicus's version. The command line and the app both call it, so a record means the same
wherever it was written.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from app import __version__
from app.assistants.profiles import ClassifierProfile
from app.assistants.registry import InstalledModel
from app.engine.openai_backend import OpenAIBackend
from app.engine.params import GenerationParams
from app.engine.protocol import ChatEngine
from app.store.provenance import Backend, ModelFile, Provenance

if TYPE_CHECKING:
    from app.assistants.runtime import Assistant


def model_file(model: InstalledModel, *, used_anyway: bool = False) -> ModelFile:
    """The model file as its manifest describes it, with its verification state."""
    output: dict[str, Any] = next((o for o in model.manifest.get("outputs", [])
                                   if o.get("role") == "model"), {})
    size = output.get("size")
    return ModelFile(name=model.name, file=str(output.get("file", "?")),
                     sha256=output.get("sha256"), size=int(size) if size is not None else None,
                     quantization=model.quantization, demo=model.demo,
                     verification=model.checksum_status(), used_anyway=used_anyway)


def backend_of(engine: ChatEngine, threads: int | None = None) -> Backend:
    """Where the engine computes; `threads`: the count a generation used (its stats)."""
    if isinstance(engine, OpenAIBackend):
        return Backend("endpoint", url=engine.endpoint.url, server_model=engine.model)
    info = engine.backend_info()
    return Backend("embedded", threads=threads if threads else info.threads,
                   adaptive_threads=info.adaptive_threads, gpu_layers=info.gpu_layers,
                   total_layers=info.total_layers)


def assistant_provenance(assistant: Assistant, *, system: str | None = None,
                         params: dict[str, Any] | None = None, think: bool | None = None,
                         threads: int | None = None) -> Provenance:
    """The record of an answer `assistant.stream(..., system=, params=, think=)` gives."""
    requested = assistant.params(params)
    endpoint = isinstance(assistant.engine, OpenAIBackend)
    return Provenance(
        assistant=assistant.name,
        model=model_file(assistant.model, used_anyway=assistant.used_anyway),
        backend=backend_of(assistant.engine, threads),
        amicus_version=__version__,
        num_ctx=assistant.engine.n_ctx,
        sampling=sampling(requested, sent_only=endpoint),
        think=think,
        system_prompt=system if system is not None else assistant.profile.system)


def sampling(requested: dict[str, Any], *, sent_only: bool = False) -> dict[str, Any]:
    """The sampling by Ollama name: every value the embedded engine uses (the Modelfile's
    and the overrides over its defaults), or, for a server, only the fields sent to it
    (the server's own defaults apply to the others)."""
    values = asdict(GenerationParams.coerce(requested))
    values["stop"] = list(values["stop"])
    if sent_only:
        return {key: value for key, value in values.items()
                if requested.get(key) is not None}
    return values


def classifier_provenance(model: InstalledModel, profile: ClassifierProfile, *,
                          threshold: float, n_ctx: int, threads: int | None,
                          used_anyway: bool = False) -> Provenance:
    """The record of an intent-safety verdict (embedded engine: the only way it runs)."""
    return Provenance(
        assistant=model.name, model=model_file(model, used_anyway=used_anyway),
        backend=Backend("embedded", threads=threads, adaptive_threads=threads is None),
        amicus_version=__version__, num_ctx=n_ctx,
        classifier={"threshold": threshold,
                    "input_format_version": profile.input_format_version,
                    "max_turns": profile.max_turns})
