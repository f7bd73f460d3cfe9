#!/usr/bin/env python3
"""Repack the runtime dependencies installed in this environment into wheels, from their
installed files (dist-info RECORD), for a machine that has a working environment but no
package index. Run it with that environment's Python:

    .venv/bin/python packaging/repack.py --dest wheelhouse/ amicus   # amicus's dependencies
    .venv/bin/python packaging/repack.py --dest wheelhouse/ textual numpy

The named distributions are repacked too unless --deps-only (amicus is usually installed
editable from its checkout: build its wheel with `pip wheel --no-deps .` instead)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from amicus_bundle.errors import BundleError
from amicus_bundle.repack import repack_closure
from packaging.utils import canonicalize_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="repack.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", metavar="REQUIREMENT",
                        help="installed distributions whose runtime closure to repack")
    parser.add_argument("--dest", type=Path, required=True, metavar="DIR")
    parser.add_argument("--deps-only", action="store_true",
                        help="leave the named distributions out, repack their dependencies")
    parser.add_argument("--allow-modified", action="store_true",
                        help="pack files that differ from their RECORD as they are now")
    args = parser.parse_args(argv)
    skip = {canonicalize_name(n) for n in args.names} if args.deps_only else set()
    try:
        results = repack_closure(args.names, args.dest, skip=skip,
                                 allow_modified=args.allow_modified)
    except BundleError as error:
        print(f"repack: {error}", file=sys.stderr)
        return error.exit_code
    for result in results:
        extra = f"  (modified: {', '.join(result.modified)})" if result.modified else ""
        print(f"{result.wheel}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
