"""Build offline installation bundles of Amicus for laptops with no network.

Run through packaging/bundle.py (build a bundle) or packaging/repack.py (turn the runtime
dependencies installed in a working environment back into wheels). packaging/ itself
has no __init__.py on purpose: as a package it would shadow the PyPI `packaging`
library (which pip and this code use) wherever the repository root is on sys.path.
"""

from __future__ import annotations
