"""The intent-safety gate: each user turn is classified before it is sent; an unsafe
verdict blocks the turn (seed 002: the classifier judges only the user's current intent,
from the ctx of the last 8 dialogue lines).

The classifier is the installed GGUF run by the embedded engine, or the same model on a
server (vLLM's /classify, llama.cpp's server's /rerank) reached through the shared client:
the command line's `--gate-endpoint`, `amicus classify --endpoint`, the app's
`gate_endpoint` setting. Both read the same seed-002 text and give the same Verdict.

The embedded gate reads as the chat engine does: in chunks, reporting progress (`progress`)
and stopping between chunks on `cancel` (ReadingCancelled). It keeps the classifier's KV
cache between the checks of a conversation, so each check reads only what the conversation
added since the previous one. A server reads where we cannot see: no progress, and a cancel
is noticed only after its answer.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.assistants.catalog import GATE_MODEL
from app.assistants.profiles import ClassifierProfile, load_classifier_profile
from app.assistants.registry import (
    InstalledModel,
    NotInstalledError,
    check_verified,
    find_model,
)
from app.engine.classifier import MAX_LENGTH, Progress, Verdict
from app.paths import modelfiles_dir
from app.store.provenance import Provenance

if TYPE_CHECKING:
    from app.engine.server_client import ServerTarget


def classifier_profile() -> ClassifierProfile:
    return load_classifier_profile(modelfiles_dir() / f"{GATE_MODEL}.json")


class IntentGate:
    """Loads the installed intent-safety classifier once; `check` judges a pending turn."""

    def __init__(self, classifier: Any, profile: ClassifierProfile,
                 model: InstalledModel | None = None, *, n_threads: int | None = None,
                 used_anyway: bool = False) -> None:
        self._classifier = classifier
        self.profile = profile
        self.model = model
        self.n_threads = n_threads
        self.used_anyway = used_anyway

    @classmethod
    def open(cls, *, root: Path | None = None, n_threads: int | None = None,
             allow_unverified: bool = False, server: ServerTarget | None = None) -> IntentGate:
        """The installed classifier, or with `server` the classifier that server serves
        (asking it which API it speaks unless `server.api` says). An installed one whose
        verification FAILED is refused (UnverifiedModelError) unless `allow_unverified`."""
        if server is not None:
            return cls.on_server(server)
        model = find_model(GATE_MODEL, root)
        if not model.is_classifier:
            raise NotInstalledError(f"{model.directory}: {GATE_MODEL} is not a classifier")
        used_anyway = check_verified(model, allow_unverified=allow_unverified)
        from app.engine import Classifier

        profile = classifier_profile()
        classifier = Classifier.load(model.gguf, task_description=profile.task_description,
                                     threshold=profile.threshold, n_threads=n_threads)
        return cls(classifier, profile, model, n_threads=n_threads, used_anyway=used_anyway)

    def provenance(self, threshold: float | None = None) -> Provenance | None:
        """The record of a verdict (None for a gate built without its installed model)."""
        if self.model is None:
            return None
        from app.assistants.provenance import classifier_provenance

        return classifier_provenance(
            self.model, self.profile,
            threshold=self.profile.threshold if threshold is None else threshold,
            n_ctx=MAX_LENGTH, threads=self.n_threads, used_anyway=self.used_anyway)

    @classmethod
    def on_server(cls, server: ServerTarget) -> IntentGate:
        from app.engine.remote_classifier import RemoteClassifier

        profile = classifier_profile()
        classifier = RemoteClassifier.connect(
            server.client(), profile.task_description, api=server.api, model=server.model,
            threshold=profile.threshold)
        return cls(classifier, profile)

    def check(self, history: Sequence[Mapping[str, Any]], user_text: str, *,
              cancel: threading.Event | None = None,
              progress: Progress | None = None) -> Verdict:
        """The verdict on `user_text` as the next user turn after `history`."""
        return self._classifier.classify([*history, {"role": "user", "content": user_text}],
                                         cancel=cancel, progress=progress)

    def classify(self, turns: Sequence[Mapping[str, Any]],
                 threshold: float | None = None, *, cancel: threading.Event | None = None,
                 progress: Progress | None = None) -> Verdict:
        """The verdict on a whole dialogue (its last user turn is the one judged)."""
        return self._classifier.classify(turns, threshold=threshold, cancel=cancel,
                                         progress=progress)

    def close(self) -> None:
        self._classifier.close()
