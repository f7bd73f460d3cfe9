"""The intent-safety gate: each user turn is classified before it is sent; an unsafe
verdict blocks the turn (seed 002: the classifier judges only the user's current intent,
from the ctx of the last 8 dialogue lines).

The gate reads as the chat engine does: in chunks, reporting progress (`progress`) and
stopping between chunks on `cancel` (ReadingCancelled). It keeps the classifier's KV cache
between the checks of a conversation, so each check reads only what the conversation added
since the previous one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.assistants.catalog import GATE_MODEL
from app.assistants.profiles import ClassifierProfile, load_classifier_profile
from app.assistants.registry import NotInstalledError, find_model
from app.engine.classifier import Progress, Verdict
from app.paths import modelfiles_dir


def classifier_profile() -> ClassifierProfile:
    return load_classifier_profile(modelfiles_dir() / f"{GATE_MODEL}.json")


class IntentGate:
    """Loads the installed intent-safety classifier once; `check` judges a pending turn."""

    def __init__(self, classifier: Any, profile: ClassifierProfile) -> None:
        self._classifier = classifier
        self.profile = profile

    @classmethod
    def open(cls, *, root: Path | None = None, n_threads: int | None = None) -> IntentGate:
        model = find_model(GATE_MODEL, root)
        if not model.is_classifier:
            raise NotInstalledError(f"{model.directory}: {GATE_MODEL} is not a classifier")
        from app.engine import Classifier

        profile = classifier_profile()
        classifier = Classifier.load(model.gguf, task_description=profile.task_description,
                                     threshold=profile.threshold, n_threads=n_threads)
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
