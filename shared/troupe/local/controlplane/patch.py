"""The two patch formats the Kubernetes API accepts for custom resources.

Merge patch is RFC 7386; JSON patch is RFC 6902. Strategic merge patch has no schema to
merge lists by key for custom resources, so the API server treats it as a merge patch too.
"""

from __future__ import annotations

import copy
from typing import Any

from troupe.local.errors import LocalError


class PatchError(LocalError, ValueError):
    """A patch that cannot be applied; answered 422 (or 400 when it is not even a patch)."""


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
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    document = copy.deepcopy(target)
    for index, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"operation {index} needs 'op' and 'path'")
        document = _apply(document, operation, index)
    return document


def _apply(document: Any, operation: dict[str, Any], index: int) -> Any:
    op, path = operation["op"], _pointer(operation["path"], index)
    if op in ("add", "replace", "test") and "value" not in operation:
        raise PatchError(f"operation {index} ({op}) needs a 'value'")
    if op == "add":
        return _add(document, path, copy.deepcopy(operation["value"]), index)
    if op == "remove":
        return _remove(document, path, index)[0]
    if op == "replace":
        document = _remove(document, path, index)[0]
        return _add(document, path, copy.deepcopy(operation["value"]), index)
    if op in ("move", "copy"):
        source = _pointer(operation.get("from", ""), index)
        value = _resolve(document, source, index)
        if op == "move":
            document = _remove(document, source, index)[0]
        return _add(document, path, copy.deepcopy(value), index)
    if op == "test":
        if _resolve(document, path, index) != operation["value"]:
            raise PatchError(f"operation {index}: test failed at {operation['path']}")
        return document
    raise PatchError(f"operation {index}: unknown op {op!r}")


def _pointer(text: Any, index: int) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise PatchError(f"operation {index}: path {text!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in text.split("/")[1:]]


def _resolve(document: Any, path: list[str], index: int) -> Any:
    for part in path:
        document = _child(document, part, index)
    return document


def _child(container: Any, part: str, index: int) -> Any:
    if isinstance(container, dict) and part in container:
        return container[part]
    if isinstance(container, list) and part.isdigit() and int(part) < len(container):
        return container[int(part)]
    raise PatchError(f"operation {index}: path segment {part!r} does not exist")


def _add(document: Any, path: list[str], value: Any, index: int) -> Any:
    if not path:
        return value
    parent = _resolve(document, path[:-1], index)
    last = path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        position = len(parent) if last == "-" else int(last) if last.isdigit() else -1
        if not 0 <= position <= len(parent):
            raise PatchError(f"operation {index}: index {last!r} is out of range")
        parent.insert(position, value)
    else:
        raise PatchError(f"operation {index}: cannot add below a scalar")
    return document


def _remove(document: Any, path: list[str], index: int) -> tuple[Any, Any]:
    if not path:
        raise PatchError(f"operation {index}: cannot remove the whole document")
    parent = _resolve(document, path[:-1], index)
    removed = _child(parent, path[-1], index)
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        del parent[int(path[-1])]
    return document, removed
