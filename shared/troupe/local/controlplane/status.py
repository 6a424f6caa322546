"""What the API answers when a request fails: a `Status` object, as the API server sends.

kubectl and the `kubernetes` client read the reason and code from its body, and list an
invalid object's causes field by field, so every failure, from an unknown path to a bug,
is one of these and never an HTML page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from troupe.local.controlplane.kinds import Kind, Obj
from troupe.local.errors import LocalError


@dataclass(frozen=True)
class Cause:
    """One offending field of an invalid object, as `details.causes` lists it."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def as_dict(self) -> Obj:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(LocalError):
    """A failed request; the status code and reason live on the error itself."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details or {}
        self.headers = headers or {}

    def status(self) -> Obj:
        return failure(self.code, self.reason, str(self), self.details)


def failure(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    status: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code}
    if details:
        status["details"] = details
    return status


def success(kind: Kind, name: str, uid: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": {**details(kind, name), "uid": uid}}


def details(kind: Kind, name: str | None) -> Obj:
    found: Obj = {"name": name, "kind": kind.plural}
    if kind.group:
        found["group"] = kind.group
    return found


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.resource} "{name}" not found', details(kind, name))


def namespace_not_found(namespace: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"})


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind.resource} "{name}" already exists',
                    details(kind, name))


def conflict(kind: Kind, name: str, why: str = "the object has been modified; please apply "
             "your changes to the latest version and try again") -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.resource} '
                    f'"{name}": {why}', details(kind, name))


def invalid(kind: Kind, name: str | None, causes: Iterable[Cause]) -> ApiError:
    listed = list(causes)
    summary = ", ".join(f"{c.field}: {c.message}" for c in listed)
    # Invalid names the Kind (kubectl prints 'The Trigger "x" is invalid'), NotFound the
    # resource, as the API server's errors do.
    return ApiError(422, "Invalid", f'{kind.kind}.{kind.group} "{name}" is invalid: {summary}'
                    if kind.group else f'{kind.kind} "{name}" is invalid: {summary}',
                    {**details(kind, name), "kind": kind.kind,
                     "causes": [c.as_dict() for c in listed]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def path_not_found(method: str, path: str) -> ApiError:
    return ApiError(404, "NotFound", f"the server could not find the requested resource "
                    f"({method} {path})")
