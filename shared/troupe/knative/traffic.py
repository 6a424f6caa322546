"""Knative Service revisions and traffic, as plain values: no cluster access here.

The deployer names each model's revision itself (`<service>-<version>`) so that traffic can
point at it in the same update that creates it, and keeps the champion's predecessor
routed at 0% under the tag `previous`: a revision that a route references is never
garbage-collected, so a rollback always has somewhere to go.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

CHAMPION: Final = "champion"
CANDIDATE: Final = "candidate"
PREVIOUS: Final = "previous"

_DNS_LABEL: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class TrafficTarget:
    """One entry of a Service's `spec.traffic`; `revision` is None for latestRevision."""

    revision: str | None
    percent: int
    tag: str | None = None

    def to_manifest(self) -> dict[str, Any]:
        entry: dict[str, Any] = (
            {"revisionName": self.revision} if self.revision is not None
            else {"latestRevision": True}
        )
        entry["percent"] = self.percent
        if self.tag is not None:
            entry["tag"] = self.tag
        return entry

    @classmethod
    def from_manifest(cls, entry: Mapping[str, Any]) -> TrafficTarget:
        revision = None if entry.get("latestRevision") else entry.get("revisionName")
        return cls(revision, int(entry.get("percent") or 0), entry.get("tag"))


def revision_name(service: str, version: str) -> str:
    """`predictor-v3`: Knative requires a chosen revision name to start with `<service>-`."""
    name = f"{service}-{version}"
    if not _DNS_LABEL.match(name) or len(name) > 63:
        raise ValueError(
            f"revision name {name!r} is not a DNS label: model versions must be lowercase "
            "letters, digits and '-' (like v3)"
        )
    return name


def traffic_of(service: Mapping[str, Any]) -> list[TrafficTarget]:
    """The desired traffic split (spec); a Service without one sends all to latest."""
    entries = (service.get("spec") or {}).get("traffic") or [{"latestRevision": True,
                                                                "percent": 100}]
    return [TrafficTarget.from_manifest(entry) for entry in entries]


def template_revision(service: Mapping[str, Any]) -> str | None:
    """The revision name the Service's template asks for, if it names one."""
    template = (service.get("spec") or {}).get("template") or {}
    name = (template.get("metadata") or {}).get("name")
    return str(name) if name else None


def tagged(traffic: Iterable[TrafficTarget], tag: str) -> TrafficTarget | None:
    return next((target for target in traffic if target.tag == tag), None)


def serving_champion(traffic: Iterable[TrafficTarget]) -> TrafficTarget | None:
    """The entry tagged champion, or else the one taking the largest share."""
    targets = list(traffic)
    champion = tagged(targets, CHAMPION)
    if champion is not None:
        return champion
    serving = [target for target in targets if target.percent > 0]
    return max(serving, key=lambda target: target.percent) if serving else None


def champion_traffic(champion: str, previous: str | None) -> list[TrafficTarget]:
    """All traffic to `champion`; `previous` stays routable (and kept) at 0%."""
    traffic = [TrafficTarget(champion, 100, CHAMPION)]
    if previous is not None and previous != champion:
        traffic.append(TrafficTarget(previous, 0, PREVIOUS))
    return traffic


def canary_traffic(champion: str, candidate: str, percent: int) -> list[TrafficTarget]:
    """`percent` to the candidate, the rest to the champion."""
    if not 0 < percent < 100:
        raise ValueError(f"a canary share must be between 1 and 99 percent, not {percent}")
    return [TrafficTarget(champion, 100 - percent, CHAMPION),
            TrafficTarget(candidate, percent, CANDIDATE)]


def with_model(
    template: Mapping[str, Any], *, revision: str, env: Mapping[str, str]
) -> dict[str, Any]:
    """A copy of a revision template named `revision`, with `env` set on its (first)
    container: existing variables of the same name are replaced, the rest are kept."""
    result = copy.deepcopy(dict(template))
    result.setdefault("metadata", {})["name"] = revision
    containers = result.setdefault("spec", {}).setdefault("containers", [{}])
    if not containers:
        containers.append({})
    container = containers[0]
    kept = [item for item in container.get("env", []) if item.get("name") not in env]
    container["env"] = kept + [{"name": name, "value": value} for name, value in env.items()]
    return result
