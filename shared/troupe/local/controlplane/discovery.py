"""API discovery: what kubectl reads first to learn which groups, versions and resources exist.

The legacy (non-aggregated) documents: `/api` and `/api/v1` for the core group, `/apis`
and `/apis/<group>[/<version>]` for the others. kubectl asks for the aggregated form first
and falls back to these when the answer is plain `application/json`.
"""

from __future__ import annotations

from typing import Final

from troupe.local.controlplane.kinds import SERVED_KINDS, Kind, Obj

_WRITE_VERBS: Final = ["create", "delete", "deletecollection", "patch", "update"]
_READ_VERBS: Final = ["get", "list", "watch"]


def _version_order(version: str) -> tuple[int, int, int]:
    """Kubernetes' version priority: GA before beta before alpha, higher numbers first."""
    major, _, rest = version.removeprefix("v").partition("alpha" if "alpha" in version
                                                          else "beta")
    stability = 0 if "alpha" in version else 1 if "beta" in version else 2
    return (-stability, -int(major or 0), -int(rest or 0))


def group_versions(kinds: tuple[Kind, ...] = SERVED_KINDS) -> dict[str, list[str]]:
    """Each non-core group and its versions, the preferred one first."""
    groups: dict[str, list[str]] = {}
    for kind in kinds:
        if kind.group:
            versions = groups.setdefault(kind.group, [])
            versions.extend(v for v in kind.versions if v not in versions)
    return {group: sorted(versions, key=_version_order) for group, versions in groups.items()}


def core_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def api_groups() -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [api_group(name) for name in group_versions()]}


def api_group(name: str) -> Obj | None:
    versions = group_versions().get(name)
    if versions is None:
        return None
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": entries,
            "preferredVersion": entries[0]}


def resource_list(group: str, version: str) -> Obj | None:
    kinds = [k for k in SERVED_KINDS if k.group == group and version in k.versions]
    if not kinds:
        return None
    resources: list[Obj] = []
    for kind in kinds:
        entry: Obj = {"name": kind.plural, "singularName": kind.singular,
                      "namespaced": kind.namespaced, "kind": kind.kind,
                      "verbs": _READ_VERBS + (_WRITE_VERBS if kind.writable else [])}
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        if kind.group or kind.plural == "namespaces":
            resources.append({"name": f"{kind.plural}/status", "singularName": "",
                              "namespaced": kind.namespaced, "kind": kind.kind,
                              "verbs": ["get"]})
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": sorted(resources, key=lambda r: r["name"])}
