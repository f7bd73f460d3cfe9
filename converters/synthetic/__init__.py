"""Tiny faithful checkpoints, tokenizers, chat templates and the demo stand-ins.

The only home of fixtures: tests and `amicus demo` use them; no pipeline module imports
this package (tests/test_import_hygiene.py checks it).
"""
