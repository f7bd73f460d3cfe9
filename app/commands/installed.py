"""`amicus models list | verify | remove`: the installed models."""

from __future__ import annotations

import argparse
import json
import sys

from app.assistants.registry import (
    InstalledModel,
    find_model,
    human_size,
    installed_models,
    remove_model,
    verify_model,
)
from converters.errors import InputError
from converters.verify.summary import report_table


def add_management_actions(actions: argparse._SubParsersAction) -> None:
    listing = actions.add_parser("list", help="installed models with size, quantization and "
                                              "checksum status")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--details", action="store_true",
                         help="also show each model's importance matrix and quality report "
                              "(drift from the merged F16, fine-tune effect)")
    listing.set_defaults(handler=run_list)
    verify = actions.add_parser("verify", help="check every file's sha256 against its manifest",
                                description="Hash every installed file and compare it with "
                                            "the manifest. Exit 2 when any model fails.")
    verify.add_argument("names", nargs="*", metavar="NAME", help="models (default: all)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(handler=run_verify)
    remove = actions.add_parser("remove", help="delete an installed model")
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(handler=run_remove)


def _row(model: InstalledModel, details: bool = False) -> dict[str, object]:
    row: dict[str, object] = {
        "name": model.name, "kind": "classifier" if model.is_classifier else "chat",
        "quantization": model.quantization, "size": model.size, "demo": model.demo,
        "checksum": model.checksum_status(), "path": str(model.directory)}
    if details:
        row.update(calibration=model.manifest.get("calibration"),
                   quality=model.manifest.get("quality"))
    return row


def run_list(args: argparse.Namespace) -> int:
    details = bool(getattr(args, "details", False))
    models = installed_models()
    rows = [_row(m, details) for m in models]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print("No models installed. Build the demo stand-ins with `amicus demo`, convert the "
              "real ones with `amicus convert ASSISTANT`, or import from Ollama with "
              "`amicus models import-ollama NAME`.")
        return 0
    print(f"{'NAME':<16} {'KIND':<10} {'QUANT':<8} {'SIZE':>9}  {'CHECKSUM':<13} NOTE")
    for model, row in zip(models, rows, strict=True):
        note = "demo: random weights, meaningless text" if row["demo"] else ""
        print(f"{row['name']:<16} {row['kind']:<10} {row['quantization']:<8} "
              f"{human_size(int(str(row['size']))):>9}  {row['checksum']:<13} {note}")
        if details:
            lines = report_table(model.manifest, indent="    ")
            print("\n".join(lines) if lines else
                  "    no importance matrix or quality report in its manifest")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    models = [find_model(n) for n in args.names] if args.names else installed_models()
    if not models:
        raise InputError("no models installed")
    results = {m.name: verify_model(m) for m in models}
    if args.json:
        print(json.dumps({n: {"ok": not p, "problems": p} for n, p in results.items()},
                         indent=2, ensure_ascii=False))
    else:
        for name, problems in results.items():
            print(f"{name}: {'ok' if not problems else 'FAILED'}")
            for problem in problems:
                print(f"  {problem}")
    failed = [n for n, p in results.items() if p]
    if failed:
        print(f"amicus: error: verification failed for {', '.join(failed)}", file=sys.stderr)
        return 2
    return 0


def run_remove(args: argparse.Namespace) -> int:
    model = find_model(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise InputError(f"refusing to remove {model.name} without --yes (no terminal to "
                             "ask on)")
        answer = input(f"Remove {model.name} ({human_size(model.size)}, {model.directory})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 0
    remove_model(model)
    print(f"removed {model.name}")
    return 0
