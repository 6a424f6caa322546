"""Admission, as Knative's webhooks and the API server do it, for every create and update.

1. Unknown fields. Knative's webhooks decode objects strictly, so a field the Go type
   does not have is refused even where the CRD schema preserves unknown fields; an object
   whose schema declares its properties is closed here for the same reason (the fields
   Knative takes behind feature flags, like a delivery `timeout`, are declared). With
   `fieldValidation=Strict`, the default, each unknown field is a cause of a 422; with
   `Warn` it is dropped with a warning, with `Ignore` dropped silently.
2. Defaults (defaults.py), as Knative's defaulting webhook sets them.
3. The CRD schema, checked with jsonschema: every violation is a cause of the same 422,
   named by its field path (`spec.template.spec.containers[0].image`).
The runtime's own checks (resources.py, and the data plane's) run after, in the store.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from typing import Any, Final

import jsonschema

from troupe.local.controlplane.defaults import apply_defaults
from troupe.local.controlplane.kinds import Kind, Obj
from troupe.local.controlplane.rest import Admitted
from troupe.local.controlplane.schemas import OBJECT_META, schema_of
from troupe.local.controlplane.status import Cause, invalid

# Fields Knative's Go types accept behind feature flags, though its CRD schemas only
# preserve them as unknown fields: delivery-timeout, retry-after and the backoff cap.
_FLAGGED: Final = {"delivery": {"timeout": {"type": "string"},
                                "retryAfterMax": {"type": "string"},
                                "backoffMax": {"type": "string"}}}
_REASONS: Final = {"required": "FieldValueRequired", "type": "FieldValueTypeInvalid",
                   "enum": "FieldValueNotSupported"}


def admit(kind: Kind, version: str, obj: Obj, old: Obj | None,
          field_validation: str) -> Admitted:
    """The object to store, or ApiError 422 listing every offending field."""
    obj = copy.deepcopy(obj)
    name = (obj.get("metadata") or {}).get("name")
    if kind.group:
        obj.pop("status", None)  # written through the status subresource only
    schema = _closed(kind, version)
    unknown = list(_unknown_fields(obj, schema, ""))
    causes: list[Cause] = []
    warnings: list[str] = []
    for path, parent, key in unknown:
        if field_validation == "Strict":
            causes.append(Cause(path, f'unknown field "{path}"', "FieldValueInvalid"))
        else:
            parent.pop(key, None)
            if field_validation == "Warn":
                warnings.append(f'unknown field "{path}"')
    apply_defaults(kind, obj)
    causes.extend(_schema_causes(kind, version, obj))
    if causes:
        raise invalid(kind, name, causes)
    return Admitted(obj, tuple(warnings))


@cache
def _closed(kind: Kind, version: str) -> Obj:
    schema = schema_of(kind, version)
    schema.setdefault("properties", {})["metadata"] = OBJECT_META
    for key in ("apiVersion", "kind"):
        schema["properties"].setdefault(key, {"type": "string"})
    return schema


def _unknown_fields(value: Any, schema: Obj, path: str
                    ) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(field path, the mapping holding it, its key) for each field the schema lacks."""
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(value):
            child = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                yield from _unknown_fields(value[key], properties[key], child)
            elif properties is not None and key in _FLAGGED.get(path.rsplit(".", 1)[-1], {}):
                continue
            elif isinstance(extra, dict):
                yield from _unknown_fields(value[key], extra, f"{path}[{key}]")
            elif properties is not None and extra is not True:
                yield child, value, key
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _unknown_fields(item, schema["items"], f"{path}[{index}]")


@cache
def _validator(kind: Kind, version: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_json_schema(_closed(kind, version)))


def _json_schema(node: Any) -> Any:
    """A structural OpenAPI v3 schema as a JSON schema: int-or-string as anyOf, nullable
    as a null type, Kubernetes' extensions and formats left out."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("format", "nullable", "example",
                                                       "description"):
            continue
        if key in ("properties", "patternProperties"):
            converted[key] = {name: _json_schema(child) for name, child in value.items()}
        else:
            converted[key] = _json_schema(value)
    if node.get("x-kubernetes-int-or-string"):
        converted.pop("type", None)
        converted["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted


def _schema_causes(kind: Kind, version: str, obj: Obj) -> Iterator[Cause]:
    for error in _validator(kind, version).iter_errors(obj):
        if error.context:
            error = jsonschema.exceptions.best_match(error.context)
        parts = list(error.absolute_path)
        if error.validator == "required":
            missing = str(error.message).split("'")[1] if "'" in error.message else ""
            parts.append(missing)
        field = ""
        for part in parts:
            field += f"[{part}]" if isinstance(part, int) else f".{part}" if field else part
        message = "Required value" if error.validator == "required" else error.message
        yield Cause(field or "<root>", message, _REASONS.get(str(error.validator),
                                                             "FieldValueInvalid"))
