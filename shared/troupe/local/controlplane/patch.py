"""The two patch formats the Kubernetes API accepts for custom resources.

JSON patch (RFC 6902) is applied by the `jsonpatch` library, whose JSON pointers follow RFC
6901 to the letter: an array index is `0` or digits without a leading zero, so `01` and
`¹` are refused instead of read as numbers. Merge patch (RFC 7386) is the few lines below;
it cannot fail. Strategic merge patch has no schema to merge lists by key for custom
resources, so the API server treats it as a merge patch too.

A patch that cannot be applied raises PatchError, which names the field at fault in the
API's notation (`spec.traffic[0].percent`), so that the API answers 422 with its path.
"""

from __future__ import annotations

import copy
from typing import Any, Final

import jsonpatch
from jsonpointer import JsonPointerException

from troupe.local.errors import InvalidFieldError

# What applying one operation to our own decoded JSON raises when the operation is wrong.
_PATCH_FAILURES: Final = (jsonpatch.JsonPatchException, JsonPointerException, TypeError,
                          KeyError, IndexError, ValueError)


class PatchError(InvalidFieldError):
    """A patch that cannot be applied; `field` is the path it failed at (answered 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: Any, operations: Any) -> Any:
    """`target` with the RFC 6902 `operations` applied, all or nothing (a copy)."""
    if not isinstance(operations, list):
        raise PatchError("patch", "a JSON patch is a list of operations, e.g. "
                         '[{"op": "replace", "path": "/spec/x", "value": 1}]')
    document = copy.deepcopy(target)
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict) or not isinstance(operation.get("op"), str) \
                or not isinstance(operation.get("path"), str):
            raise PatchError(f"patch[{index}]", "an operation needs an 'op' and a 'path', "
                             'e.g. {"op": "remove", "path": "/spec/x"}')
        try:
            document = jsonpatch.JsonPatch([operation]).apply(document, in_place=True)
        except _PATCH_FAILURES as error:
            raise PatchError(_field_of(operation), f"{operation['op']} at "
                             f"{operation['path']!r} failed: {_reason(error)}") from None
    return document


def _field_of(operation: dict[str, Any]) -> str:
    """A JSON pointer in the API's field notation: /spec/traffic/0 -> spec.traffic[0]."""
    pointer: str = operation["path"]
    field = ""
    for part in pointer.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        index = part.isascii() and part.isdecimal() and (part == "0" or part[0] != "0")
        field += f"[{part}]" if index else f".{part}"
    return field.lstrip(".") or "patch"


def _reason(error: Exception) -> str:
    # A KeyError's str() quotes its message.
    text = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    text = text or type(error).__name__
    return text[:300]
