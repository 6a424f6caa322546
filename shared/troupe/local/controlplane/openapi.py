"""The OpenAPI documents the API server publishes, built from the kinds' schemas.

kubectl reads them before it writes: `apply`, `diff`, `edit` and `create` look in
`/openapi/v3/apis/<group>/<version>` for the `fieldValidation` parameter of each kind's
PATCH, and finding it leave validation to the server (which refuses unknown fields, as
Knative's webhooks do); `explain` walks the schemas under `components`. `/openapi/v2`
carries the same for older clients. The documents are made once, as the schemas are
fixed for the life of the runtime.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from typing import Any, Final

from troupe.local.controlplane.kinds import SERVED_KINDS, Kind, Obj
from troupe.local.controlplane.schemas import OBJECT_META, schema_of

_META: Final = "io.k8s.apimachinery.pkg.apis.meta.v1"
_CORE_PREFIXES: Final = {"": "io.k8s.api.core", "rbac.authorization.k8s.io": "io.k8s.api.rbac",
                         "networking.k8s.io": "io.k8s.api.networking"}


def definition_name(kind: Kind, version: str, suffix: str = "") -> str:
    """`dev.knative.serving.v1.Service`, the name the API server gives a CRD's schema;
    `io.k8s.api.core.v1.ConfigMap` for Kubernetes' own kinds."""
    prefix = _CORE_PREFIXES.get(kind.group) or ".".join(reversed(kind.group.split(".")))
    return f"{prefix}.{version}.{kind.kind}{suffix}"


def _gvk(kind: Kind, version: str, suffix: str = "") -> Obj:
    return {"group": kind.group, "version": version, "kind": kind.kind + suffix}


def _parameter(name: str, where: str, description: str, kind: str = "string") -> Obj:
    return {"name": name, "in": where, "description": description, "schema": {"type": kind},
            "uniqueItems": True, **({"required": True} if where == "path" else {})}


_WRITE: Final = [
    _parameter("dryRun", "query", "When present (All), the change is checked, not stored."),
    _parameter("fieldManager", "query", "A name for the actor making the change."),
    _parameter("fieldValidation", "query", "Strict (the default here: unknown fields are "
               "refused, as Knative's webhooks refuse them), Warn or Ignore (unknown fields "
               "are dropped, with or without a warning)."),
]
_READ: Final = [
    _parameter("labelSelector", "query", "Only objects whose labels match."),
    _parameter("fieldSelector", "query", "Only metadata.name or metadata.namespace."),
    _parameter("resourceVersion", "query", "With watch: the changes after this version."),
    _parameter("timeoutSeconds", "query", "How long a watch stays open.", "integer"),
    _parameter("watch", "query", "Stream the changes instead of listing.", "boolean"),
    _parameter("allowWatchBookmarks", "query", "Send BOOKMARK events.", "boolean"),
    _parameter("sendInitialEvents", "query", "Start a watch with the objects there are.",
               "boolean"),
]
_DELETE: Final = [
    _parameter("dryRun", "query", "When present (All), nothing is deleted."),
    _parameter("propagationPolicy", "query", "Background, Foreground or Orphan: what "
               "happens to the objects this one owns."),
    _parameter("gracePeriodSeconds", "query", "Accepted; deletion is immediate.", "integer"),
]


def _ref(name: str) -> Obj:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(name: str) -> Obj:
    return {"content": {"application/json": {"schema": _ref(name)}}, "required": True}


def _answer(name: str) -> Obj:
    return {"200": {"description": "OK", "content": {"application/json": {
        "schema": _ref(name)}}}}


def _operation(kind: Kind, version: str, action: str, answer: str, parameters: list[Obj],
               body: str | None = None, content: tuple[str, ...] = ()) -> Obj:
    operation: Obj = {
        "operationId": f"{action}{kind.kind}{version.capitalize()}",
        "x-kubernetes-action": action, "x-kubernetes-group-version-kind": _gvk(kind, version),
        "parameters": parameters, "responses": _answer(answer)}
    if body is not None:
        operation["requestBody"] = _body(body)
        if content:
            operation["requestBody"]["content"] = {c: {"schema": _ref(body)} for c in content}
    return operation


def _paths(kind: Kind, version: str) -> dict[str, Obj]:
    base = f"/apis/{kind.group}/{version}" if kind.group else f"/api/{version}"
    scoped = f"{base}/namespaces/{{namespace}}" if kind.namespaced else base
    one, many = definition_name(kind, version), definition_name(kind, version, "List")
    namespace = [_parameter("namespace", "path", "The object's namespace.")] \
        if kind.namespaced else []
    name = [_parameter("name", "path", "The object's name.")]
    collection: Obj = {"parameters": namespace,
                       "get": _operation(kind, version, "list", many, _READ)}
    item: Obj = {"parameters": [*namespace, *name],
                 "get": _operation(kind, version, "get", one, [])}
    if kind.writable:
        collection["post"] = _operation(kind, version, "post", one, _WRITE, one)
        collection["delete"] = _operation(kind, version, "deletecollection", f"{_META}.Status",
                                          [*_DELETE, *_READ[:2]])
        item["put"] = _operation(kind, version, "put", one, _WRITE, one)
        item["patch"] = _operation(kind, version, "patch", one, _WRITE, f"{_META}.Patch", (
            "application/json-patch+json", "application/merge-patch+json",
            "application/strategic-merge-patch+json"))
        item["delete"] = _operation(kind, version, "delete", f"{_META}.Status", _DELETE,
                                    f"{_META}.DeleteOptions")
    paths = {f"{scoped}/{kind.plural}": collection, f"{scoped}/{kind.plural}/{{name}}": item,
             f"{scoped}/{kind.plural}/{{name}}/status": {
                 "parameters": [*namespace, *name],
                 "get": _operation(kind, version, "get", one, [])}}
    if kind.namespaced:
        paths[f"{base}/{kind.plural}"] = {"get": _operation(kind, version, "list", many, _READ)}
    return paths


def _published(kind: Kind, version: str) -> Obj:
    """The kind's schema as the API server publishes it: metadata as ObjectMeta."""
    schema = schema_of(kind, version)
    properties = schema.setdefault("properties", {})
    properties["metadata"] = {"allOf": [_ref(f"{_META}.ObjectMeta")],
                              "description": OBJECT_META["description"]}
    schema["x-kubernetes-group-version-kind"] = [_gvk(kind, version)]
    return schema


def _list_schema(kind: Kind, version: str) -> Obj:
    return {"description": f"A list of {kind.kind}.", "type": "object", "required": ["items"],
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": _ref(f"{_META}.ListMeta"),
                           "items": {"type": "array", "items": _ref(
                               definition_name(kind, version))}},
            "x-kubernetes-group-version-kind": [_gvk(kind, version, "List")]}


_COMMON: Final[dict[str, Obj]] = {
    f"{_META}.ObjectMeta": OBJECT_META,
    f"{_META}.ListMeta": {"type": "object", "properties": {
        "resourceVersion": {"type": "string"}, "continue": {"type": "string"}}},
    f"{_META}.Status": {"type": "object", "properties": {
        "kind": {"type": "string"}, "apiVersion": {"type": "string"},
        "status": {"type": "string"}, "message": {"type": "string"},
        "reason": {"type": "string"}, "code": {"type": "integer"},
        "details": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}},
    f"{_META}.DeleteOptions": {"type": "object", "properties": {
        "propagationPolicy": {"type": "string"}, "dryRun": {"type": "array", "items": {
            "type": "string"}}, "gracePeriodSeconds": {"type": "integer"},
        "preconditions": {"type": "object", "properties": {
            "uid": {"type": "string"}, "resourceVersion": {"type": "string"}}}}},
    f"{_META}.Patch": {"type": "object", "description": "A patch of one of the accepted types."},
}


@cache
def group_version_document(group: str, version: str) -> bytes | None:
    """The OpenAPI v3 document of one group version, or None if none is served."""
    kinds = [k for k in SERVED_KINDS if k.group == group and version in k.versions]
    if not kinds:
        return None
    paths: dict[str, Obj] = {}
    schemas: dict[str, Obj] = copy.deepcopy(_COMMON)
    for kind in kinds:
        paths.update(_paths(kind, version))
        schemas[definition_name(kind, version)] = _published(kind, version)
        schemas[definition_name(kind, version, "List")] = _list_schema(kind, version)
    document = {"openapi": "3.0.0", "info": {"title": "troupe", "version": "v1.32.0-troupe"},
                "paths": paths, "components": {"schemas": schemas}}
    return json.dumps(document, separators=(",", ":")).encode()


def _group_versions() -> list[tuple[str, str]]:
    return sorted({(kind.group, v) for kind in SERVED_KINDS for v in kind.versions})


@cache
def v3_root() -> bytes:
    """`/openapi/v3`: where each group version's document is, with its hash."""
    paths: dict[str, Any] = {}
    for group, version in _group_versions():
        document = group_version_document(group, version)
        assert document is not None
        path = f"apis/{group}/{version}" if group else f"api/{version}"
        digest = hashlib.sha512(document).hexdigest().upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return json.dumps({"paths": paths}, separators=(",", ":")).encode()


@cache
def v2_document() -> bytes:
    """`/openapi/v2` (Swagger 2.0): every group version in one document."""
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for group, version in _group_versions():
        document = json.loads(group_version_document(group, version) or b"{}")
        for path, item in document["paths"].items():
            paths[path] = _to_v2(item)
        for name, schema in document["components"]["schemas"].items():
            definitions[name] = _to_v2(schema)
    swagger = {"swagger": "2.0", "info": {"title": "troupe", "version": "v1.32.0-troupe"},
               "paths": paths, "definitions": definitions}
    return json.dumps(swagger, separators=(",", ":")).encode()


def _to_v2(node: Any) -> Any:
    """OpenAPI v3 -> Swagger 2.0: references under #/definitions, bodies as parameters,
    parameter types inline, and what Swagger lacks (nullable, anyOf) left out."""
    if isinstance(node, list):
        return [_to_v2(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            converted[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key in ("nullable", "anyOf", "oneOf", "not"):
            continue
        elif key == "allOf" and len(value) == 1:
            converted.update(_to_v2(value[0]))
        elif key == "requestBody":
            schema = next(iter(value["content"].values()))["schema"]
            converted.setdefault("parameters", []).append(
                {"name": "body", "in": "body", "required": True, "schema": _to_v2(schema)})
        elif key == "parameters":
            converted.setdefault("parameters", [])
            converted["parameters"] = [*(_parameter_v2(p) for p in value),
                                       *converted["parameters"]]
        elif key == "responses":
            converted[key] = {code: {"description": answer["description"], "schema": _to_v2(
                next(iter(answer["content"].values()))["schema"])}
                for code, answer in value.items()}
        else:
            converted[key] = _to_v2(value)
    return converted


def _parameter_v2(parameter: Obj) -> Obj:
    converted = {k: v for k, v in parameter.items() if k != "schema"}
    converted["type"] = parameter["schema"]["type"]
    return converted

