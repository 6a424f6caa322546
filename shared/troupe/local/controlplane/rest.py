"""The API's verbs over the object store: list, watch, get, create, update, patch and delete,
with the options the API server takes (dryRun, fieldValidation, selectors, DeleteOptions)
and the answers it gives, so that kubectl and the `kubernetes` client cannot tell the
difference for what they do with Knative's resources.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Final

from werkzeug.wrappers import Request, Response

from troupe.local.controlplane import status
from troupe.local.controlplane.collector import FOREGROUND, dependents, orphan
from troupe.local.controlplane.kinds import NAMESPACE, Kind, Obj, api_version
from troupe.local.controlplane.objects import (
    AlreadyExists,
    Conflict,
    NotFound,
    ObjectStore,
    Preconditions,
)
from troupe.local.controlplane.patch import PatchError, json_patch, merge_patch
from troupe.local.controlplane.selectors import both
from troupe.local.controlplane.status import ApiError, Cause
from troupe.local.controlplane.tables import as_table, wants_table
from troupe.local.controlplane.watch import DEFAULT_TIMEOUT, WatchRequest, watch
from troupe.local.errors import InvalidFieldError

_MERGE_TYPES: Final = ("application/merge-patch+json", "application/strategic-merge-patch+json")
_JSON: Final = "application/json"
FIELD_VALIDATION: Final = ("Strict", "Warn", "Ignore")


@dataclass(frozen=True)
class Target:
    """What a request's path names: a resource of a kind, maybe one object of it."""

    kind: Kind
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None = None

    @property
    def api_version(self) -> str:
        return api_version(self.kind.group, self.version)


@dataclass(frozen=True)
class Admitted:
    """An object after admission (defaults applied, unknown fields dropped when the
    request allowed it), with a warning for each field dropped."""

    obj: Obj
    warnings: tuple[str, ...] = field(default=())


# (kind, the version the client wrote, object, the object it replaces or None,
# fieldValidation) -> the admitted object; raises ApiError (422) for an invalid object.
Admit = Callable[[Kind, str, Obj, Obj | None, str], Admitted]


def admit_unchanged(kind: Kind, version: str, obj: Obj, old: Obj | None,
                    field_validation: str) -> Admitted:
    return Admitted(obj)


def json_response(code: int, payload: Obj,
                  headers: list[tuple[str, str]] | None = None) -> Response:
    # The reason phrase as Go's net/http writes it ("404 Not Found"), which kubectl prints.
    return Response(json.dumps(payload, separators=(",", ":")),
                    status=f"{code} {HTTPStatus(code).phrase}", content_type=_JSON,
                    headers=headers)


class Resources:
    """The handlers of the resource paths, over one object store."""

    def __init__(self, objects: ObjectStore, admit: Admit, stopping: threading.Event,
                 bookmark_interval: float = 10.0) -> None:
        self._objects = objects
        self._admit = admit
        self._stopping = stopping
        self._bookmark_interval = bookmark_interval

    def handle(self, request: Request, target: Target) -> Response:
        method = request.method
        if target.subresource not in (None, "status"):
            raise status.path_not_found(method, request.path)
        if target.name is None:
            if method == "GET":
                return self._list_or_watch(request, target)
            if method == "POST" and target.subresource is None:
                return self._create(request, target)
            if method == "DELETE" and target.subresource is None:
                return self._delete_collection(request, target)
        elif method == "GET":
            return self._get(request, target)
        elif target.subresource is None and method in ("PUT", "PATCH", "DELETE"):
            return {"PUT": self._update, "PATCH": self._patch,
                    "DELETE": self._delete}[method](request, target)
        raise status.method_not_allowed(f"{method} is not supported on {request.path}")

    # -- reading ------------------------------------------------------------------------
    def _render(self, request: Request, target: Target) -> Callable[[Obj], Obj]:
        table = wants_table(request.headers.get("Accept", ""))
        include = request.args.get("includeObject", "Metadata")

        def render(obj: Obj) -> Obj:
            obj = {**obj, "apiVersion": target.api_version}
            return as_table(target.kind, [obj], include) if table else obj
        return render

    def _list_or_watch(self, request: Request, target: Target) -> Response:
        selector = both(request.args.get("labelSelector", ""),
                        request.args.get("fieldSelector", ""))
        if _flag(request.args.get("watch")):
            return self._watch(request, target, selector)
        items, version = self._objects.list_at_version(target.kind, target.namespace)
        items = [{**o, "apiVersion": target.api_version} for o in items if selector(o)]
        if wants_table(request.headers.get("Accept", "")):
            table = as_table(target.kind, items, request.args.get("includeObject", "Metadata"))
            table["metadata"]["resourceVersion"] = str(version)
            return json_response(200, table)
        return json_response(200, {"apiVersion": target.api_version,
                                   "kind": f"{target.kind.kind}List",
                                   "metadata": {"resourceVersion": str(version)},
                                   "items": items})

    def _watch(self, request: Request, target: Target, selector: Callable[[Obj], bool]
               ) -> Response:
        version_text = request.args.get("resourceVersion", "")
        try:
            version = int(version_text) if version_text not in ("", "0") else None
            timeout = float(request.args.get("timeoutSeconds") or DEFAULT_TIMEOUT)
        except ValueError:
            raise status.bad_request(f"invalid resourceVersion {version_text!r} or "
                                     "timeoutSeconds: both are whole numbers") from None
        stream = watch(self._objects, WatchRequest(
            target.kind, target.api_version, target.namespace, selector, version, timeout,
            bookmarks=_flag(request.args.get("allowWatchBookmarks")),
            send_initial_events=_flag(request.args.get("sendInitialEvents")),
            gone=request.environ.get("waitress.client_disconnected", lambda: False)),
            self._render(request, target), self._stopping, self._bookmark_interval)
        return Response(stream, status=200, content_type=_JSON, direct_passthrough=True)

    def _get(self, request: Request, target: Target) -> Response:
        assert target.name is not None
        obj = self._read(target, target.name)
        obj["apiVersion"] = target.api_version
        if wants_table(request.headers.get("Accept", "")):
            return json_response(200, as_table(target.kind, [obj],
                                               request.args.get("includeObject", "Metadata")))
        return json_response(200, obj)

    def _read(self, target: Target, name: str) -> Obj:
        try:
            return self._objects.get(target.kind, target.namespace or "", name)
        except NotFound:
            raise status.not_found(target.kind, name) from None

    # -- writing ------------------------------------------------------------------------
    def _writable(self, target: Target) -> None:
        if not target.kind.writable:
            raise status.method_not_allowed(
                f"{target.kind.resource} are kept by the serving controller and read-only: "
                "change the Service they belong to instead")

    def _create(self, request: Request, target: Target) -> Response:
        self._writable(target)
        body = _object_body(request)
        metadata = body["metadata"]
        if target.kind.namespaced:
            if target.namespace is None:
                raise status.method_not_allowed(
                    f"{target.kind.resource} are namespaced: POST to "
                    f"/apis/{target.api_version}/namespaces/<namespace>/{target.kind.plural}")
            if metadata.get("namespace", target.namespace) != target.namespace:
                raise status.bad_request(
                    f"the namespace of the provided object ({metadata['namespace']}) does not "
                    f"match the namespace sent on the request ({target.namespace})")
            metadata["namespace"] = target.namespace
            self._namespace_exists(target.namespace)
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = str(metadata["generateName"]) + secrets.token_hex(3)[:5]
        if not metadata.get("name"):
            raise status.invalid(target.kind, None, [Cause("metadata.name", "name or "
                                 "generateName is required", "FieldValueRequired")])
        name = str(metadata["name"])
        admitted = self._admit(target.kind, target.version, body, None,
                               _field_validation(request))
        try:
            created = self._objects.create(target.kind, admitted.obj, dry_run=_dry_run(request))
        except AlreadyExists:
            raise status.already_exists(target.kind, name) from None
        except InvalidFieldError as error:
            raise _invalid(target.kind, name, error) from None
        return json_response(201, {**created, "apiVersion": target.api_version},
                             _warnings(admitted))

    def _namespace_exists(self, namespace: str) -> None:
        try:
            self._objects.get(NAMESPACE, "", namespace)
        except NotFound:
            raise status.namespace_not_found(namespace) from None

    def _update(self, request: Request, target: Target) -> Response:
        self._writable(target)
        assert target.name is not None
        body = _object_body(request)
        if body["metadata"].get("name", target.name) != target.name:
            raise status.bad_request(f"the name of the object ({body['metadata']['name']}) "
                                     f"does not match the name on the URL ({target.name})")
        current = self._read(target, target.name)
        return self._replace(request, target, current, body)

    def _patch(self, request: Request, target: Target) -> Response:
        self._writable(target)
        assert target.name is not None
        patch = _json_body(request)
        current = self._read(target, target.name)
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if content_type == "application/json-patch+json":
                patched = json_patch(current, patch)
            elif content_type in _MERGE_TYPES:
                patched = merge_patch(current, patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the patch type {content_type!r} "
                               "is not supported here: use a JSON merge patch, a strategic "
                               "merge patch or a JSON patch (server-side apply is not served)")
        except PatchError as error:  # names the field at fault, and the operation's path
            raise status.invalid(target.kind, target.name, [status.Cause(
                error.field, f"the patch cannot be applied: {error.problem}")]) from None
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise status.bad_request("the patched object must be a mapping with metadata")
        if not (isinstance(patch, dict) and (patch.get("metadata") or {}).get("resourceVersion")):
            # A patch applies to the latest version unless it names one itself.
            patched["metadata"].pop("resourceVersion", None)
        return self._replace(request, target, current, patched)

    def _replace(self, request: Request, target: Target, current: Obj, body: Obj) -> Response:
        assert target.name is not None
        body["metadata"].update(name=target.name)
        if target.kind.namespaced:
            body["metadata"]["namespace"] = target.namespace
        admitted = self._admit(target.kind, target.version, body, current,
                               _field_validation(request))
        try:
            stored = self._objects.replace(target.kind, admitted.obj, dry_run=_dry_run(request))
        except NotFound:
            raise status.not_found(target.kind, target.name) from None
        except Conflict:
            raise status.conflict(target.kind, target.name) from None
        except InvalidFieldError as error:
            raise _invalid(target.kind, target.name, error) from None
        return json_response(200, {**stored, "apiVersion": target.api_version},
                             _warnings(admitted))

    def _delete(self, request: Request, target: Target) -> Response:
        self._writable(target)
        assert target.name is not None
        options = _delete_options(request)
        current = self._read(target, target.name)
        if options.propagation == "Orphan" and not options.dry_run:
            orphan(self._objects, current["metadata"]["uid"])
        try:
            obj, gone = self._objects.delete(
                target.kind, target.namespace or "", target.name,
                preconditions=options.preconditions, dry_run=options.dry_run,
                finalizers=[FOREGROUND] if options.propagation == "Foreground"
                and dependents(self._objects, current["metadata"]["uid"]) else [])
        except NotFound:
            raise status.not_found(target.kind, target.name) from None
        except Conflict as error:
            raise status.conflict(target.kind, target.name, error.why) from None
        if not gone:  # finalizers still to run: the object stays, marked for deletion
            return json_response(202, {**obj, "apiVersion": target.api_version})
        return json_response(200, status.success(target.kind, target.name,
                                                 obj["metadata"]["uid"]))

    def _delete_collection(self, request: Request, target: Target) -> Response:
        self._writable(target)
        selector = both(request.args.get("labelSelector", ""),
                        request.args.get("fieldSelector", ""))
        options = _delete_options(request)
        deleted = []
        for obj in self._objects.list(target.kind, target.namespace):
            if selector(obj):
                metadata = obj["metadata"]
                try:
                    gone, _ = self._objects.delete(target.kind, metadata.get("namespace", ""),
                                                   metadata["name"], dry_run=options.dry_run)
                except NotFound:
                    continue  # deleted meanwhile
                deleted.append({**gone, "apiVersion": target.api_version})
        return json_response(200, {"apiVersion": target.api_version,
                                   "kind": f"{target.kind.kind}List",
                                   "metadata": {"resourceVersion": str(self._objects.version)},
                                   "items": deleted})


@dataclass(frozen=True)
class DeleteOptions:
    preconditions: Preconditions = field(default_factory=Preconditions)
    propagation: str = "Background"
    dry_run: bool = False


def _delete_options(request: Request) -> DeleteOptions:
    """DeleteOptions from the body (kubectl, the `kubernetes` client) or the query."""
    body = _json_body(request) if request.get_data() else {}
    if not isinstance(body, dict):
        raise status.bad_request("the body of a DELETE must be DeleteOptions (a mapping)")
    given = body.get("preconditions") or {}
    propagation = body.get("propagationPolicy") or request.args.get("propagationPolicy")
    if propagation not in (None, "Background", "Foreground", "Orphan"):
        raise status.bad_request(f"propagationPolicy {propagation!r} is not one of "
                                 "Background, Foreground or Orphan")
    dry_run = body.get("dryRun") or request.args.getlist("dryRun")
    _check_dry_run(dry_run)
    return DeleteOptions(Preconditions(given.get("uid"), given.get("resourceVersion")),
                         propagation or "Background", bool(dry_run))


def _json_body(request: Request) -> Any:
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
    if content_type.startswith("application/vnd.kubernetes.protobuf"):
        # kubectl's `create namespace|configmap|secret` send Kubernetes' protobuf, which
        # is not decoded here; `kubectl apply -f` sends JSON for every kind.
        raise ApiError(415, "UnsupportedMediaType", f"the body's content type {content_type}"
                       " is not decoded by the local control plane: send application/json "
                       "(`kubectl apply -f` a manifest instead of `kubectl create <kind>`)")
    raw = request.get_data()
    try:
        return json.loads(raw or b"null")
    except ValueError as error:
        raise status.bad_request(f"the body is not JSON: {error}") from None


def _object_body(request: Request) -> Obj:
    body = _json_body(request)
    if not isinstance(body, dict):
        raise status.bad_request("the body must be a JSON object")
    if not isinstance(body.setdefault("metadata", {}), dict):
        raise status.bad_request("metadata must be a mapping")
    return body


def _dry_run(request: Request) -> bool:
    values = request.args.getlist("dryRun")
    _check_dry_run(values)
    return bool(values)


def _check_dry_run(values: list[str]) -> None:
    if any(value != "All" for value in values):
        raise status.bad_request(f"dryRun {values!r}: the only dry run is dryRun=All")


def _field_validation(request: Request) -> str:
    value = request.args.get("fieldValidation") or "Strict"
    if value not in FIELD_VALIDATION:
        raise status.bad_request(f"fieldValidation={value!r}: use Strict, Warn or Ignore")
    return value


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _warnings(admitted: Admitted) -> list[tuple[str, str]]:
    """One `Warning: 299 - "..."` header per warning, which kubectl prints as it comes."""
    return [("Warning", f'299 - "{warning}"') for warning in admitted.warnings]


def _invalid(kind: Kind, name: str | None, error: InvalidFieldError) -> ApiError:
    return status.invalid(kind, name, [Cause(error.field, error.problem)])
