"""The installed models a bundle carries: checked against their manifests first, so a
model damaged on the preparing machine is never copied to every clinic laptop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from amicus_bundle.errors import BundleError
from app.assistants.registry import InstalledModel, find_model, installed_models, verify_model
from converters.errors import InputError
from converters.outputs.manifest import MANIFEST_NAME


class ModelError(BundleError):
    """A named model is missing, or its files do not match its manifest."""


@dataclass(frozen=True)
class BundleModel:
    name: str
    directory: Path
    files: tuple[str, ...]  # relative to directory: the manifest and every output
    size: int
    demo: bool
    quantization: str


def _files(model: InstalledModel) -> tuple[str, ...]:
    names = [MANIFEST_NAME]
    for output in model.manifest.get("outputs", []):
        name = str(output.get("file", ""))
        path = PurePosixPath(name)
        if not name or path.is_absolute() or len(path.parts) != 1:
            raise ModelError(f"{model.directory / MANIFEST_NAME}: output {name!r} is not a "
                             "file name in the model's folder")
        names.append(name)
    return tuple(names)


def _bundle_model(model: InstalledModel) -> BundleModel:
    problems = verify_model(model)
    if problems:
        raise ModelError(f"model {model.name} in {model.directory} does not match its "
                         "manifest: " + "; ".join(problems))
    files = _files(model)
    size = sum((model.directory / name).stat().st_size for name in files)
    return BundleModel(model.name, model.directory, files, size, model.demo,
                       model.quantization)


def select_models(names: list[str], root: Path | None) -> list[BundleModel]:
    """The named installed models ("all": every one), verified. Order as given."""
    if names == ["all"]:
        chosen = installed_models(root)
        if not chosen:
            raise ModelError("no models are installed (run `amicus demo` or `amicus convert`)")
    else:
        try:
            chosen = [find_model(name, root) for name in dict.fromkeys(names)]
        except InputError as error:
            raise ModelError(str(error)) from None
    return [_bundle_model(model) for model in chosen]
