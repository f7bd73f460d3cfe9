"""The runtime dependency closure of an installed distribution, from its metadata.

Markers are evaluated for the running interpreter, which is the target platform when
wheels are repacked from an environment (the only use of this closure)."""

from __future__ import annotations

from importlib import metadata

from packaging.markers import UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name

from amicus_bundle.errors import BundleError


class ClosureError(BundleError):
    """A required distribution is not installed, or its version does not fit."""


def _applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    try:  # an `extra == "x"` marker applies only when extra x was asked for
        return any(requirement.marker.evaluate({"extra": extra}) for extra in extras | {""})
    except UndefinedEnvironmentName:
        return False


def _requirements(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    found = []
    for text in dist.requires or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise ClosureError(f"{dist.metadata['Name']}: bad requirement {text!r}: {error}") \
                from error
        if _applies(requirement, extras):
            found.append(requirement)
    return found


def _installed(requirement: Requirement, wanted_by: str) -> metadata.Distribution:
    try:
        dist = metadata.distribution(requirement.name)
    except metadata.PackageNotFoundError as error:
        raise ClosureError(f"{requirement.name} (needed by {wanted_by}) is not installed "
                           "in this environment") from error
    if not requirement.specifier.contains(dist.version, prereleases=True):
        raise ClosureError(f"{requirement.name} {dist.version} is installed, but {wanted_by} "
                           f"needs {requirement}")
    return dist


def runtime_closure(roots: list[str]) -> dict[NormalizedName, metadata.Distribution]:
    """Every installed distribution the roots need at run time (the roots included), by
    normalized name. Extras are followed only where a requirement names them."""
    found: dict[NormalizedName, metadata.Distribution] = {}
    extras_seen: dict[NormalizedName, set[str]] = {}
    pending = [(Requirement(root), "the command line") for root in roots]
    while pending:
        requirement, wanted_by = pending.pop()
        name = canonicalize_name(requirement.name)
        extras = set(requirement.extras)
        if name in found and extras <= extras_seen[name]:
            continue
        dist = _installed(requirement, wanted_by)  # checks the version every time
        found[name] = dist
        extras_seen[name] = extras_seen.get(name, set()) | extras
        owner = f"{dist.metadata['Name']} {dist.version}"
        pending.extend((req, owner) for req in _requirements(dist, extras_seen[name]))
    return dict(sorted(found.items()))
