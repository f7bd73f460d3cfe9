"""`amicus convert`: the command-line face of converters.pipeline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from app.assistants.catalog import NAMES, require
from app.engine.threads import ThreadPolicy
from app.paths import models_dir
from converters.errors import InputError
from converters.quantize.types import QUANT_CHOICES
from converters.recipes import recipe_sources
from converters.verify.summary import report_table

if TYPE_CHECKING:
    from converters.pipeline import ConvertRequest

ASSISTANTS = NAMES
__all__ = ["ASSISTANTS", "QUANT_CHOICES", "run_convert"]


def run_convert(args: argparse.Namespace) -> int:
    # The pipeline loads llama.cpp: imported when a conversion runs, not when any
    # `amicus` command builds its parser.
    from converters.pipeline import Progress, convert

    request = _request(args)
    result = convert(request, Progress(enabled=True))
    if args.json:
        print(json.dumps(result.summary(), indent=2, ensure_ascii=False))
    else:
        for path in result.outputs:
            print(f"wrote {path}")
        for line in report_table(result.manifest):
            print(line)
        # quality_base_write is part of quality (quality_base is a step of its own): the
        # line lists the steps themselves.
        steps = ", ".join(f"{step} {seconds:.1f}" for step, seconds in result.seconds.items()
                          if step not in ("total", "resolve", "quality_base_write"))
        print(f"done in {result.seconds['total']:.1f} s ({steps})")
    return 0


def _request(args: argparse.Namespace) -> ConvertRequest:
    from converters.pipeline import ConvertRequest

    common = {"quant": args.quant, "keep_intermediate": args.keep_intermediate,
              "verify": args.verify, "threads": args.threads or ThreadPolicy().choose().threads,
              "imatrix": args.imatrix, "quality": args.quality,
              "imatrix_out": Path(args.imatrix_out) if args.imatrix_out else None,
              "calibration": Path(args.calibration) if args.calibration else None}
    modelfile = Path(args.modelfile) if args.modelfile else None
    if args.assistant:
        if args.adapter:
            raise InputError("with ASSISTANT, give a local fine-tune with --base, not --adapter")
        spec = require(args.assistant)
        base, adapters = recipe_sources(spec.name, spec.recipe, args.base)
        name = args.name or args.assistant
        out = Path(args.out) if args.out else models_dir() / name
        modelfile = modelfile or spec.shipped_modelfile()
        return ConvertRequest(base=base, adapters=adapters, name=name, out_dir=out,
                              modelfile=modelfile, calibration_set=spec.recipe.calibration,
                              input_format=spec.input_format(), **common)
    missing = [flag for flag, value in (("--base", args.base), ("--name", args.name),
                                        ("--out", args.out)) if not value]
    if missing:
        raise InputError(f"give an ASSISTANT, or {', '.join(missing)}")
    return ConvertRequest(base=args.base, adapters=tuple(args.adapter), name=args.name,
                          out_dir=Path(args.out), modelfile=modelfile, **common)
