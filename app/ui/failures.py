"""How the app's parts report a failure: the dialog that app.errors describes, and store
calls that show it and stop the handler that made them (one bad write never ends the app).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from textual.dom import DOMNode

from app.errors import describe
from app.store import StoreError
from app.ui.screens.error_dialog import ErrorDialog

P = ParamSpec("P")
T = TypeVar("T")


class StoreFailed(Exception):
    """A store call failed and its dialog is shown: the handler stops there."""


def show_failure(node: DOMNode, exc: BaseException, title: str | None = None) -> None:
    """The dialog for a failure, as app.errors describes it (`title` overrides its title)."""
    failure = describe(exc)
    node.app.push_screen(ErrorDialog(title or failure.title, failure.line))


def store_call(node: DOMNode, call: Callable[P, T], /, *args: P.args,
               **kwargs: P.kwargs) -> T:
    """`call(*args, **kwargs)`, a store method; on StoreError its dialog is shown and
    StoreFailed raised."""
    try:
        return call(*args, **kwargs)
    except StoreError as exc:
        show_failure(node, exc)
        raise StoreFailed from exc


def store_call_or(node: DOMNode, default: T, call: Callable[P, T], /, *args: P.args,
                  **kwargs: P.kwargs) -> T:
    """As store_call, but `default` when it fails (the dialog is shown all the same)."""
    try:
        return store_call(node, call, *args, **kwargs)
    except StoreFailed:
        return default
