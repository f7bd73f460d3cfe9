"""`amicus demo`: tiny random-weight stand-ins for the five assistants, through the real
pipeline (synthetic checkpoint + adapter -> merge -> GGUF -> Q4_K_M -> verify -> install)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from app.assistants.catalog import CATALOG, AssistantSpec
from app.paths import demo_sources_dir, models_dir
from converters.outputs.manifest import MANIFEST_NAME, read_manifest
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic.demo import build_stand_in


def _to_build(models: Path, args: argparse.Namespace) -> list[AssistantSpec]:
    """Which stand-ins to build. A real model installed under an assistant's name is never
    replaced by random weights; an installed demo is kept unless --rebuild."""
    specs = []
    for spec in CATALOG:
        name = spec.name
        manifest_path = models / name / MANIFEST_NAME
        if args.sources_only or not manifest_path.is_file():
            specs.append(spec)
            continue
        try:
            is_demo = bool(read_manifest(manifest_path).get("demo"))
        except ValueError:
            is_demo = False  # unreadable: treat as someone's real model, leave it alone
        if not is_demo:
            print(f"  {name:<14} a real model is installed: left as it is")
        elif args.rebuild:
            specs.append(spec)
        else:
            print(f"  {name:<14} demo already installed (--rebuild to build it again)")
    return specs


def run_demo(args: argparse.Namespace) -> int:
    models = Path(args.out) if args.out else models_dir()
    sources_root = models.parent / "demo-sources" if args.out else demo_sources_dir()
    print("Demo models: random weights, their text is meaningless.", flush=True)
    for spec in _to_build(models, args):
        source = build_stand_in(spec.stand_in, sources_root / spec.name)
        if args.sources_only:
            print(f"  {spec.name:<14} {source.summary}")
            continue
        started = time.perf_counter()
        result = convert(ConvertRequest(
            base=str(source.base), adapters=tuple(str(a) for a in source.adapters),
            name=spec.name, out_dir=models / spec.name, modelfile=spec.shipped_modelfile(),
            calibration_set=spec.recipe.calibration, input_format=spec.input_format(),
            demo=True), Progress(enabled=False))
        size = result.outputs[0].stat().st_size
        print(f"  {spec.name:<14} {size / 1e6:6.1f} MB  {time.perf_counter() - started:5.1f} s"
              f"  {source.summary}", flush=True)
    where = sources_root if args.sources_only else models
    print(f"Demo {'sources' if args.sources_only else 'models'} in {where}")
    return 0
