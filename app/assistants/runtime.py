"""An installed assistant, ready to chat: its profile (from its Modelfile) and an engine
(the embedded llama.cpp one, or an OpenAI-compatible server given with --endpoint, through
the shared ServerClient).

The command line and the terminal app both open assistants through here, so prompts,
sampling and the notices an assistant adds are the same wherever it is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.assistants.catalog import finish_answer, spec_of
from app.assistants.profiles import AssistantProfile, load_profile
from app.assistants.registry import (
    InstalledModel,
    NotInstalledError,
    check_verified,
    find_model,
)
from app.engine.events import Event
from app.engine.messages import Message
from app.engine.protocol import ChatEngine
from app.engine.reading import PromptEstimate
from app.store.provenance import Provenance

if TYPE_CHECKING:
    from app.engine.kv_state import SavedState
    from app.engine.server_client import ServerTarget

DEMO_NOTICE = "demo model: random weights, the text it produces is meaningless"


@dataclass
class Assistant:
    model: InstalledModel
    profile: AssistantProfile
    engine: ChatEngine
    used_anyway: bool = False  # loaded although its verification FAILED (the user chose)

    @property
    def name(self) -> str:
        return self.model.name

    def params(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The Modelfile's sampling parameters and stops, with per-conversation overrides."""
        params: dict[str, Any] = dict(self.profile.parameters)
        params["stop"] = list(self.profile.stop)
        params.update(overrides or {})
        return params

    def stream(self, messages: Sequence[Message], *, system: str | None = None,
               params: dict[str, Any] | None = None, think: bool | None = None,
               cancel: threading.Event | None = None,
               owner: str | None = None) -> Iterator[Event]:
        """The engine's stream with this assistant's defaults: the Modelfile's system
        prompt unless `system` is given, its sampling with `params` over it. `owner`: the
        conversation (`conversation_owner`), so that deleting it forgets its reading."""
        return self.engine.stream(
            messages, system=system if system is not None else self.profile.system,
            params=self.params(params), think=think, cancel=cancel, owner=owner)

    def forget(self, owner: str) -> int:
        """The conversation `owner` was deleted: drop what the engine read for it, in
        memory and saved on disk (an engine without saved states has nothing to drop)."""
        forget = getattr(self.engine, "forget", None)
        return int(forget(owner)) if forget is not None else 0

    def estimate(self, messages: Sequence[Message], *, system: str | None = None,
                 params: dict[str, Any] | None = None,
                 think: bool | None = None) -> PromptEstimate | None:
        """Before sending (the status line, `ask` on stderr): the prompt's tokens against
        num_ctx and the reading time, with this assistant's defaults as `stream` applies
        them. None for a server backend, which reads prompts where we cannot see."""
        estimate = getattr(self.engine, "estimate", None)
        if estimate is None:
            return None
        result: PromptEstimate = estimate(
            messages, system=system if system is not None else self.profile.system,
            params=self.params(params), think=think)
        return result

    def saved_state(self, messages: Sequence[Message], *, system: str | None = None,
                    params: dict[str, Any] | None = None,
                    think: bool | None = None) -> tuple[SavedState, int, int] | None:
        """The engine's saved state serving this conversation as `stream` would render it
        (the state, the conversation's tokens it holds, the conversation's tokens); None
        when there is none, or the engine keeps none (a server, incognito)."""
        saved_state = getattr(self.engine, "saved_state", None)
        if saved_state is None:
            return None
        found: tuple[SavedState, int, int] | None = saved_state(
            messages, system=system if system is not None else self.profile.system,
            params=self.params(params), think=think)
        return found

    def provenance(self, *, system: str | None = None, params: dict[str, Any] | None = None,
                   think: bool | None = None, threads: int | None = None) -> Provenance:
        """The record of what produces an answer of `stream(..., system=, params=, think=)`
        (`threads`: the count the generation used, from its Finished stats)."""
        from app.assistants.provenance import assistant_provenance

        return assistant_provenance(self, system=system, params=params, think=think,
                                    threads=threads)

    def finish_answer(self, answer: str) -> str:
        """The answer as shown and stored (the catalog's post-processing: sentencing
        answers carry the not-legal-advice notice, whatever the model wrote)."""
        return finish_answer(self.name, answer)

    def close(self) -> None:
        self.engine.close()


def conversation_owner(conversation_id: int) -> str:
    """How an engine's saved states name the stored conversation they were read for."""
    return f"conversation-{conversation_id}"


def modelfile_for(name: str, model: InstalledModel | None) -> Path | None:
    """The installed model's Modelfile, else the one Amicus ships for that assistant."""
    if model is not None and model.modelfile is not None:
        return model.modelfile
    spec = spec_of(name)
    return spec.shipped_modelfile() if spec is not None else None


def assistant_profile(model: InstalledModel) -> AssistantProfile:
    path = modelfile_for(model.name, model)
    if path is None:
        raise NotInstalledError(f"{model.name}: no Modelfile next to {model.gguf.name}; chat "
                         "assistants need one (the classifier is used through --gate)")
    return load_profile(path)


def model_sha256(model: InstalledModel) -> str | None:
    """The model file's sha256 as its manifest records it (what `amicus models verify`
    checks), so saved KV states are keyed without hashing gigabytes at every start."""
    for output in model.manifest.get("outputs", []):
        if output.get("role") == "model" and isinstance(output.get("sha256"), str):
            return str(output["sha256"])
    return None


def open_assistant(name: str, *, server: ServerTarget | None = None,
                   n_gpu_layers: int | None = None, n_threads: int | None = None,
                   root: Path | None = None, allow_unverified: bool = False,
                   num_ctx: int | None = None, persist: bool = True,
                   kv_budget_bytes: int | None = None, available_memory: int | None = None,
                   read_chunk: int | None = None) -> Assistant:
    """Load an installed assistant (the model stays mapped until `close`), or, with
    `server`, chat through that server (the installed Modelfile still gives the prompts).

    A model whose verification FAILED is refused (UnverifiedModelError) unless
    `allow_unverified`, which its answers' provenance then records. The server is asked for
    `server.model`, by default the assistant's own name (what `ollama create NAME -f
    Modelfile` installs it as).

    `num_ctx`: the embedded engine's context for this session (default: the Modelfile's
    num_ctx); refused when over the model's trained context or when the memory estimate
    exceeds what is available (`available_memory`, default: measured now). A server reads
    with the context it was started with, which no request changes: its backend keeps the
    Modelfile's num_ctx (what Ollama runs that Modelfile with), so the provenance records
    no size that was not used (`ask --endpoint` refuses --num-ctx). `persist`: save
    and restore KV states and remember reading rates in the data directory (False for
    incognito: nothing is written). `kv_budget_bytes`: the disk budget of saved states
    (default 4 GiB). `read_chunk`: a fixed prompt chunk in tokens (tests)."""
    model = find_model(name, root)
    if model.is_classifier:
        raise NotInstalledError(f"{name} is a classifier: use `amicus classify` or --gate")
    used_anyway = check_verified(model, allow_unverified=allow_unverified)
    profile = assistant_profile(model)
    if server is not None:
        from app.assistants.server import server_model_name
        from app.engine.openai_backend import OpenAIBackend

        engine: ChatEngine = OpenAIBackend(server.client(),
                                           model=server.model or server_model_name(name),
                                           n_ctx=profile.n_ctx)
    else:
        from app.engine import Engine
        from app.engine.kv_state import KVStateStore
        from app.engine.reading import ReadingRates

        engine = Engine.load(
            model.gguf, n_ctx=num_ctx or profile.n_ctx, n_gpu_layers=n_gpu_layers,
            n_threads=n_threads,
            available_memory=available_memory,
            states=KVStateStore.default(kv_budget_bytes) if persist else None,
            rates=ReadingRates.default() if persist else ReadingRates(None),
            model_sha256=model_sha256(model), read_chunk=read_chunk)
    return Assistant(model, profile, engine, used_anyway=used_anyway)
