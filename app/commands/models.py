"""`amicus models import-ollama NAME[:TAG]`: install a model from a local Ollama store.

The GGUF blob is verified against its digest, loaded with llama.cpp and evaluated before
anything is installed; then `models/<name>/` gets the GGUF (a hard link when the store is
on the same file system, else a symbolic link, or a copy with --copy; the command says
which), a Modelfile rebuilt from the model's template, system prompt, parameters and
messages, and a manifest.json shaped like the converter's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.errors import InputError
from converters.outputs.manifest import valid_model_name


def add_models_parser(commands: argparse._SubParsersAction) -> None:
    from app.commands.installed import add_management_actions, run_list

    models = commands.add_parser("models", help="installed models: list, verify, remove, "
                                                "import from Ollama",
                                 description="Manage the models Amicus has installed.")
    actions = models.add_subparsers(dest="models_action", metavar="ACTION")
    models.set_defaults(handler=run_list, json=False)
    add_management_actions(actions)
    imported = actions.add_parser(
        "import-ollama", help="install a model from a local Ollama store (no download)",
        description=(
            "Install a model that Ollama has already pulled, as an Amicus assistant: its\n"
            "GGUF (linked, not copied, where possible), a Modelfile with its template,\n"
            "system prompt and parameters, and a manifest. The store is $OLLAMA_MODELS or\n"
            "~/.ollama/models (or /usr/share/ollama/.ollama/models). Nothing is fetched."),
        epilog=("example:\n  amicus models import-ollama "
                "demonbyron/qwen3-4b-CriminalLaw-cn:q4 --as sentencing\n"
                "exit status: 0 success, 2 bad input (missing or corrupt store), 1 failure"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    imported.add_argument("name", metavar="NAME[:TAG]",
                          help="Ollama model name; no namespace means library/, no tag latest")
    imported.add_argument("--as", dest="local_name", metavar="NAME",
                          help="name to install it under (default: the model name, plus "
                               "-TAG unless the tag is latest)")
    imported.add_argument("--store", metavar="DIR", help="the Ollama models folder")
    imported.add_argument("--out", metavar="DIR",
                          help="install into DIR instead of the data directory's models/NAME")
    imported.add_argument("--copy", action="store_true",
                          help="copy the GGUF when it cannot be hard-linked (default: a "
                               "symbolic link into the Ollama store)")
    imported.add_argument("--force", action="store_true", help="replace an installed model")
    imported.set_defaults(handler=run_import_ollama)


@dataclass(frozen=True)
class Plan:
    """What an import will install, decided before anything is written."""

    local_name: str
    target: Path
    gguf_name: str
    modelfile_text: str
    notes: tuple[str, ...]
    details: dict[str, Any]


def run_import_ollama(args: argparse.Namespace) -> int:
    from converters.ollama.store import find_store, open_model, parse_name

    name = parse_name(args.name)
    store = find_store(Path(args.store).expanduser() if args.store else None)
    model = open_model(store, name)
    plan = _plan(model, args)
    for note in plan.notes:
        print(f"amicus: warning: {note}", file=sys.stderr)
    how = _install(model, plan, copy=args.copy)
    print(f"installed {plan.local_name} from Ollama {name} into {plan.target}")
    print(f"  GGUF: {how}")
    return 0


def _plan(model: Any, args: argparse.Namespace) -> Plan:
    from app.paths import models_dir
    from converters.outputs.manifest import MANIFEST_NAME

    local = args.local_name or _default_local_name(model.name)
    if not valid_model_name(local):
        raise InputError(f"--as {local!r}: use letters, digits, '.', '_', '+', '-'")
    target = Path(args.out) if args.out else models_dir() / local
    if (target / MANIFEST_NAME).exists() and not args.force:
        raise InputError(f"{target} already holds an installed model; pass --force to "
                         "replace it")
    blob = model.blob_path(model.gguf)
    _verify_gguf_blob(model, blob)
    details = _gguf_details(blob, model.config)
    details["verification"] = _check_loads(blob)
    gguf_name = f"{local}.{details['quantization']}.gguf"
    text, notes = _modelfile_text(model, gguf_name)
    return Plan(local, target, gguf_name, text, tuple(notes), details)


def _default_local_name(name: Any) -> str:
    return name.model if name.tag == "latest" else f"{name.model}-{name.tag}"


def _verify_gguf_blob(model: Any, blob: Path) -> None:
    from tqdm import tqdm

    from converters.ollama.store import verify_blob

    with tqdm(total=model.gguf.size, desc="verify sha256", unit="B", unit_scale=True,
              unit_divisor=1024, file=sys.stderr, leave=False,
              disable=model.gguf.size < 256 * 1024 * 1024) as bar:
        verify_blob(blob, model.gguf, bar.update)


def _gguf_details(blob: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Architecture and quantization from the GGUF header (Ollama's config as a hint)."""
    import gguf

    try:
        reader = gguf.GGUFReader(blob)
        arch = reader.fields["general.architecture"].contents()
        file_type = reader.fields["general.file_type"].contents() if (
            "general.file_type" in reader.fields) else None
        ftype = gguf.LlamaFileType(file_type).name if isinstance(file_type, int) else None
    # gguf's reader indexes into the file as its header says: a damaged header shows as
    # any of these.
    except (ValueError, KeyError, IndexError, OverflowError, OSError) as exc:
        raise InputError(f"{blob}: the model layer is not a readable GGUF ({exc})") from exc
    if not isinstance(arch, str):
        raise InputError(f"{blob}: the model layer's GGUF header names no architecture")
    quant = config.get("file_type") if isinstance(config.get("file_type"), str) else None
    if not quant and ftype is not None:
        quant = ftype.removeprefix("MOSTLY_").removeprefix("ALL_")
    quant = re.sub(r"[^\w.+-]", "_", quant or "gguf")
    return {"architecture": arch, "quantization": quant}


def _check_loads(blob: Path) -> dict[str, Any]:
    """Load with llama.cpp and evaluate a few tokens: the app will be able to run it."""
    import llama_cpp

    from converters.llama_runtime import load_llama
    from converters.verify.checks import VerificationError, greedy_check

    llm = load_llama(blob, n_ctx=256)
    try:
        evaluated = greedy_check(llm, 0)  # the prompt's logits are finite
        return {"loaded": True, "n_vocab": llm.n_vocab(),
                "n_ctx_train": llama_cpp.llama_model_n_ctx_train(llm.model),
                "evaluated_tokens": evaluated}
    except VerificationError as exc:
        raise InputError(f"{blob}: {exc}") from exc
    finally:
        llm.close()


def _modelfile_text(model: Any, gguf_name: str) -> tuple[str, list[str]]:
    from converters.ollama.modelfile import build_modelfile, render_modelfile

    parameters, notes = _typed_parameters(model.parameters)
    messages, skipped = _messages(model.messages)
    modelfile = build_modelfile(
        model=f"./{gguf_name}", template=model.template, system=model.system,
        parameters=parameters, messages=messages, licenses=model.licenses,
        comments=[f" Imported from Ollama {model.name} (manifest sha256 "
                  f"{model.manifest_sha256[:12]})"])
    written = render_modelfile(modelfile)
    return written.text, notes + skipped + list(written.warnings)


def _typed_parameters(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    from converters.ollama.modelfile import LIST_PARAMETERS, PARAMETERS, format_parameter

    typed: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in params.items():
        if key not in PARAMETERS:
            notes.append(f"parameter {key} left out: not a Modelfile PARAMETER")
            continue
        values = value if isinstance(value, list) else [value]
        if key not in LIST_PARAMETERS and len(values) != 1:
            notes.append(f"parameter {key} left out: {value!r} is a list")
            continue
        try:
            for item in values:
                format_parameter(key, item)
        except InputError as exc:
            notes.append(f"parameter {key} left out: {exc}")
            continue
        typed[key] = values if key in LIST_PARAMETERS else values[0]
    return typed, notes


def _messages(raw: tuple[dict[str, Any], ...]) -> tuple[list[tuple[str, str]], list[str]]:
    kept, notes = [], []
    for message in raw:
        role, content = message.get("role"), message.get("content")
        if role in ("system", "user", "assistant") and isinstance(content, str):
            kept.append((role, content))
        else:
            notes.append(f"preset message with role {role!r} left out")
    return kept, notes


def _install(model: Any, plan: Plan, *, copy: bool) -> str:
    from converters.outputs.staging import Staging

    created = not plan.target.exists()
    try:
        with Staging(plan.target) as stage:
            how = _place(model.blob_path(model.gguf), stage.path(plan.gguf_name), copy=copy)
            stage.path("Modelfile").write_text(plan.modelfile_text, encoding="utf-8",
                                               newline="\n")
            _write_install_manifest(stage, model, plan, how)
            previous = _previous_outputs(plan.target)
            stage.commit([plan.gguf_name, "Modelfile", "manifest.json"])
    except BaseException:
        if created and plan.target.is_dir() and not any(plan.target.iterdir()):
            plan.target.rmdir()
        raise
    for stale in previous - {plan.gguf_name, "Modelfile", "manifest.json"}:
        (plan.target / stale).unlink(missing_ok=True)
    return how


def _place(blob: Path, destination: Path, *, copy: bool) -> str:
    """Hard link, else copy (--copy) or symbolic link; never a silent copy of gigabytes."""
    try:
        os.link(blob, destination)
        return f"hard link to the Ollama blob {blob.name} (no extra disk space)"
    except OSError:
        pass
    if copy:
        shutil.copyfile(blob, destination)
        return f"copied from {blob} ({blob.stat().st_size / 1e9:.2f} GB)"
    destination.symlink_to(blob.resolve())
    return (f"symbolic link to {blob.resolve()} (another file system: keep the Ollama store "
            "in place, or import again with --copy)")


def _previous_outputs(target: Path) -> set[str]:
    """Files a replaced installation listed in its manifest (removed after --force)."""
    from converters.outputs.manifest import read_manifest

    try:
        manifest = read_manifest(target / "manifest.json")
        return {o["file"] for o in manifest.get("outputs", []) if "/" not in o["file"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _write_install_manifest(stage: Any, model: Any, plan: Plan, how: str) -> None:
    from converters.outputs.manifest import build_manifest, output_entry, write_manifest

    gguf = {"file": plan.gguf_name, "role": "model", "size": model.gguf.size,
            "sha256": model.gguf.digest, "placed_as": how.split(" (")[0]}
    source = {"role": "ollama", "name": str(model.name), "store": str(model.store),
              "manifest": str(model.manifest_path), "manifest_sha256": model.manifest_sha256,
              "layers": [{"mediaType": la.media_type, "digest": f"sha256:{la.digest}",
                          "size": la.size} for la in model.layers]}
    manifest = build_manifest(
        name=plan.local_name, architecture=plan.details["architecture"],
        gguf_architecture=plan.details["architecture"],
        quantization=plan.details["quantization"], sources=[source],
        outputs=[gguf, output_entry(stage.path("Modelfile"), "modelfile")],
        verification=plan.details["verification"], merge={"adapters": 0})
    write_manifest(stage.path("manifest.json"), manifest)
