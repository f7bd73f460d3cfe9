"""Amicus: fine-tuned models as offline domain assistants."""

__version__ = "0.1.0"
