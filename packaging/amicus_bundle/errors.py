"""The bundle tools' errors: under Amicus's one error root (bad input or environment, exit
2, one line), so `bundle.py` and `repack.py` report failures as `amicus` does."""

from __future__ import annotations

from converters.errors import AmicusError


class BundleError(AmicusError):
    """The bundle cannot be built as asked; str() names the model, wheel or file."""

    title = "The bundle cannot be built"
