"""The schema of every kind the control plane serves, for admission and for OpenAPI.

Knative's kinds take the `openAPIV3Schema` of the CRDs Knative ships (the package data in
`crds/`, named with their release in its README). Kubernetes' own kinds that the
manifests hold get the part of their schema that matters here, written below: their
top-level fields are checked, and what they leave open (a NetworkPolicy's rules) is kept
as it is sent. Every kind's `metadata` is ObjectMeta.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib.resources import files
from typing import Any, Final

import yaml

from troupe.local.controlplane.kinds import (
    CONFIGMAP,
    NAMESPACE,
    NETWORKPOLICY,
    ROLE,
    ROLEBINDING,
    SECRET,
    SERVED_KINDS,
    SERVICEACCOUNT,
    Kind,
    Obj,
)

_STRING: Final = {"type": "string"}
_STRINGS: Final = {"type": "array", "items": _STRING}
_STRING_MAP: Final = {"type": "object", "additionalProperties": _STRING}
_OPEN: Final = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

OBJECT_META: Final[Obj] = {
    "description": "Standard object's metadata.",
    "type": "object",
    "properties": {
        "name": _STRING, "generateName": _STRING, "namespace": _STRING, "uid": _STRING,
        "resourceVersion": _STRING, "generation": {"type": "integer", "format": "int64"},
        "creationTimestamp": {"type": "string", "format": "date-time"},
        "deletionTimestamp": {"type": "string", "format": "date-time"},
        "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
        "labels": _STRING_MAP, "annotations": _STRING_MAP, "finalizers": _STRINGS,
        "selfLink": _STRING,
        "ownerReferences": {"type": "array", "items": {
            "type": "object", "required": ["apiVersion", "kind", "name", "uid"],
            "properties": {"apiVersion": _STRING, "kind": _STRING, "name": _STRING,
                           "uid": _STRING, "controller": {"type": "boolean"},
                           "blockOwnerDeletion": {"type": "boolean"}}}},
        "managedFields": {"type": "array", "items": _OPEN},
    },
}


def _core(description: str, **properties: Any) -> Obj:
    return {"description": description, "type": "object", "properties": {
        "apiVersion": _STRING, "kind": _STRING, "metadata": {"type": "object"},
        **properties}}


_RULE: Final = {"type": "object", "required": ["verbs"], "properties": {
    "apiGroups": _STRINGS, "resources": _STRINGS, "verbs": _STRINGS,
    "resourceNames": _STRINGS, "nonResourceURLs": _STRINGS}}
_CORE_SCHEMAS: Final[dict[Kind, Obj]] = {
    NAMESPACE: _core("Namespace provides a scope for Names.",
                     spec={"type": "object", "properties": {"finalizers": _STRINGS}},
                     status={"type": "object", "properties": {
                         "phase": _STRING, "conditions": {"type": "array", "items": _OPEN}}}),
    CONFIGMAP: _core("ConfigMap holds configuration data for pods to consume.",
                     data=_STRING_MAP, binaryData=_STRING_MAP,
                     immutable={"type": "boolean"}),
    SECRET: _core("Secret holds secret data; `data` values are base64.",
                  data=_STRING_MAP, stringData=_STRING_MAP, type=_STRING,
                  immutable={"type": "boolean"}),
    SERVICEACCOUNT: _core("ServiceAccount binds together a name, understood by users, and "
                          "secrets.", automountServiceAccountToken={"type": "boolean"},
                          secrets={"type": "array", "items": _OPEN},
                          imagePullSecrets={"type": "array", "items": {
                              "type": "object", "properties": {"name": _STRING}}}),
    ROLE: _core("Role is a namespaced set of rules.",
                rules={"type": "array", "items": _RULE}),
    ROLEBINDING: _core(
        "RoleBinding grants the permissions of a role to subjects.",
        subjects={"type": "array", "items": {
            "type": "object", "required": ["kind", "name"], "properties": {
                "kind": _STRING, "name": _STRING, "namespace": _STRING, "apiGroup": _STRING}}},
        roleRef={"type": "object", "required": ["apiGroup", "kind", "name"], "properties": {
            "apiGroup": _STRING, "kind": _STRING, "name": _STRING}}),
    NETWORKPOLICY: _core(
        "NetworkPolicy describes what network traffic is allowed for a set of Pods.",
        spec={"type": "object", "properties": {
            "podSelector": _OPEN, "policyTypes": {"type": "array", "items": {
                "type": "string", "enum": ["Ingress", "Egress"]}},
            "ingress": {"type": "array", "items": _OPEN},
            "egress": {"type": "array", "items": _OPEN}}},
        status=_OPEN),
}


@cache
def _crds() -> dict[tuple[str, str], Obj]:
    """(group, kind) -> the CRD, from the package data."""
    found: dict[tuple[str, str], Obj] = {}
    for entry in files("troupe.local.controlplane").joinpath("crds").iterdir():
        if not entry.name.endswith(".yaml"):
            continue
        # libyaml's loader when PyYAML has it: the CRDs are half a megabyte, which the
        # pure-Python loader takes seconds to read at every `troupe up`.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for document in yaml.load_all(entry.read_text(encoding="utf-8"), Loader=loader):
            if document and document.get("kind") == "CustomResourceDefinition":
                spec = document["spec"]
                found[(spec["group"], spec["names"]["kind"])] = document
    return found


@cache
def _schema(kind: Kind, version: str) -> Obj:
    if kind in _CORE_SCHEMAS:
        return _CORE_SCHEMAS[kind]
    crd = _crds()[(kind.group, kind.kind)]
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: Obj = served["schema"]["openAPIV3Schema"]
            return schema
    raise LookupError(f"the CRD of {kind.kind} serves no version {version}")


def schema_of(kind: Kind, version: str | None = None) -> Obj:
    """The structural schema of `kind` at `version` (its stored one by default): a copy,
    free to change."""
    return copy.deepcopy(_schema(kind, version or kind.version))


def check_every_kind_has_a_schema() -> None:
    """Raise LookupError if a served kind and version has no schema (a missing CRD)."""
    for kind in SERVED_KINDS:
        for version in kind.versions:
            _schema(kind, version)
