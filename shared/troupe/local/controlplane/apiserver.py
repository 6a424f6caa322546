"""A Kubernetes-style REST API on loopback: just enough for the `kubernetes` client and kubectl.

It serves discovery and list/get/create/update/patch/delete of the Knative kinds in
`resources.KINDS`, answers errors as `Status` objects with the API server's reasons and
codes, and exposes the runtime's own metrics at /metrics.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from troupe.local.controlplane.objects import AlreadyExists, Conflict, NotFound, ObjectStore
from troupe.local.controlplane.patch import PatchError, json_patch, merge_patch
from troupe.local.controlplane.resources import KINDS, Kind, Obj, kind_by_plural
from troupe.local.controlplane.tables import as_table, wants_table
from troupe.local.errors import InvalidFieldError, LocalError
from troupe.local.host.loopback_http import KeepAliveHandler

_PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)"
                   r"(?:/namespaces/(?P<namespace>[^/]+))?/(?P<plural>[^/]+)"
                   r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$")
_VERBS = ["create", "delete", "get", "list", "patch", "update"]
_MERGE_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


class ApiError(LocalError):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.details = code, reason, details or {}

    def status(self) -> Obj:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": str(self), "reason": self.reason, "details": self.details,
                "code": self.code}


def discovery_groups() -> Obj:
    groups: dict[str, list[str]] = {}
    for kind in KINDS:
        groups.setdefault(kind.group, [])
        if kind.version not in groups[kind.group]:
            groups[kind.group].append(kind.version)
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
        _group(name, versions) for name, versions in groups.items()]}


def _group(name: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": entries,
            "preferredVersion": entries[0]}


def resource_list(group: str, version: str) -> Obj | None:
    kinds = [k for k in KINDS if k.group == group and k.version == version]
    if not kinds:
        return None
    resources: list[Obj] = []
    for kind in kinds:
        resources.append({"name": kind.plural, "singularName": kind.singular, "namespaced": True,
                          "kind": kind.kind, "verbs": _VERBS, "shortNames": list(kind.short_names),
                          "categories": ["all", "knative"]})
        resources.append({"name": f"{kind.plural}/status", "singularName": "", "namespaced": True,
                          "kind": kind.kind, "verbs": ["get"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}",
            "resources": resources}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    objects: ObjectStore
    metrics: Callable[[], bytes]
    status: Callable[[], Obj]


class _ApiHandler(KeepAliveHandler):
    server: _Server

    def _handle(self) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_json() if self.command in ("POST", "PUT", "PATCH") else None
            code, payload = self._dispatch(url.path.rstrip("/") or "/", parse_qs(url.query), body)
        except ApiError as error:
            code, payload = error.code, error.status()
        if isinstance(payload, bytes):
            self._send(code, payload, "text/plain; version=0.0.4")
        else:
            self._send(code, json.dumps(payload).encode(), "application/json")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    def _dispatch(self, path: str, query: dict[str, list[str]],
                  body: Any) -> tuple[int, Obj | bytes]:
        if self.command == "GET":
            fixed = self._discovery(path)
            if fixed is not None:
                return 200, fixed
        match = _PATH.match(path)
        kind = kind_by_plural(match["group"], match["plural"]) if match else None
        if match is None or kind is None or kind.version != match["version"]:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource "
                           f"({self.command} {path})")
        namespace, name = match["namespace"], match["name"]
        if name is None:
            return self._collection(kind, namespace, query, body)
        if namespace is None:
            raise ApiError(404, "NotFound", f"{kind.plural} are namespaced: use "
                           f"/apis/{kind.api_version}/namespaces/<ns>/{kind.plural}/{name}")
        return self._item(kind, namespace, name, body)

    def _discovery(self, path: str) -> Obj | bytes | None:
        if path == "/metrics":
            return self.server.metrics()
        if path == "/troupe/status":
            return self.server.status()
        if path == "/version":
            return {"major": "1", "minor": "30", "gitVersion": "v1.30.0-troupe",
                    "platform": "linux/amd64"}
        if path in ("/healthz", "/readyz", "/livez"):
            return b"ok"
        if path == "/api":
            address = f"127.0.0.1:{self.server.server_address[1]}"
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}
        if path == "/api/v1":
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
        if path == "/apis":
            return discovery_groups()
        parts = path.split("/")[2:]
        if len(parts) == 1:
            group = next((g for g in discovery_groups()["groups"] if g["name"] == parts[0]), None)
            if group is None:
                raise ApiError(404, "NotFound", f"no API group {parts[0]!r}")
            return dict(group)
        if len(parts) == 2:
            listing = resource_list(*parts)
            if listing is None:
                raise ApiError(404, "NotFound", f"no API group version {'/'.join(parts)!r}")
            return listing
        return None

    def _collection(self, kind: Kind, namespace: str | None, query: dict[str, list[str]],
                    body: Any) -> tuple[int, Obj]:
        objects = self.server.objects
        if self.command == "GET":
            items = [o for o in objects.list(kind, namespace)
                     if _selected(o, query.get("labelSelector", [""])[0])]
            if wants_table(self.headers.get("Accept", "")):
                return 200, as_table(kind.plural, items)
            return 200, {"apiVersion": kind.api_version, "kind": f"{kind.kind}List",
                         "metadata": {"resourceVersion": ""}, "items": items}
        if self.command != "POST" or namespace is None:
            raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed here")
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        metadata = body.setdefault("metadata", {})
        if metadata.get("namespace", namespace) != namespace:
            raise ApiError(400, "BadRequest", f"metadata.namespace {metadata['namespace']!r} "
                           f"does not match the request namespace {namespace!r}")
        metadata["namespace"] = namespace
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
        try:
            return 201, objects.create(kind, body)
        except AlreadyExists:
            raise ApiError(409, "AlreadyExists", f'{kind.plural}.{kind.group} '
                           f'"{metadata["name"]}" already exists',
                           _details(kind, metadata["name"])) from None
        except InvalidFieldError as error:
            raise _invalid(kind, metadata.get("name"), error) from None

    def _item(self, kind: Kind, namespace: str, name: str, body: Any) -> tuple[int, Obj]:
        objects = self.server.objects
        try:
            if self.command == "GET":
                obj = objects.get(kind, namespace, name)
                if wants_table(self.headers.get("Accept", "")):
                    return 200, as_table(kind.plural, [obj])
                return 200, obj
            if self.command == "DELETE":
                deleted = objects.delete(kind, namespace, name)
                return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                             "status": "Success", "details": {**_details(kind, name),
                                                              "uid": deleted["metadata"]["uid"]}}
            current = objects.get(kind, namespace, name)
            if self.command == "PUT":
                updated = body
            elif self.command == "PATCH":
                updated = self._patched(current, body)
                if isinstance(updated, dict) and not _sets_version(body):
                    # A patch is applied to the latest version unless it names one itself.
                    (updated.get("metadata") or {}).pop("resourceVersion", None)
            else:
                raise ApiError(405, "MethodNotAllowed", f"{self.command} is not allowed here")
            if not isinstance(updated, dict) or not isinstance(updated.get("metadata"), dict):
                raise ApiError(422, "Invalid", "the result must be an object with metadata")
            updated["metadata"].update(namespace=namespace, name=name)
            return 200, objects.replace(kind, updated)
        except NotFound:
            raise ApiError(404, "NotFound", f'{kind.plural}.{kind.group} "{name}" not found',
                           _details(kind, name)) from None
        except Conflict:
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.plural}.'
                           f'{kind.group} "{name}": the object has been modified; please apply '
                           "your changes to the latest version and try again",
                           _details(kind, name)) from None
        except InvalidFieldError as error:
            raise _invalid(kind, name, error) from None
        except PatchError as error:
            raise ApiError(422, "Invalid", f"the patch cannot be applied: {error}",
                           _details(kind, name)) from None

    def _patched(self, current: Obj, body: Any) -> Any:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == "application/json-patch+json":
            return json_patch(current, body)
        if content_type in _MERGE_TYPES:
            return merge_patch(current, body)
        raise ApiError(415, "UnsupportedMediaType", f"patch type {content_type!r} is not "
                       "supported; use merge-patch, strategic-merge-patch or json-patch")

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError as error:
            raise ApiError(400, "BadRequest", f"the body is not JSON: {error}") from None

    def _send(self, code: int, payload: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _sets_version(body: Any) -> bool:
    return isinstance(body, dict) and bool((body.get("metadata") or {}).get("resourceVersion"))


def _details(kind: Kind, name: str | None) -> Obj:
    return {"name": name, "group": kind.group, "kind": kind.plural}


def _invalid(kind: Kind, name: str | None, error: InvalidFieldError) -> ApiError:
    return ApiError(422, "Invalid", f'{kind.kind}.{kind.group} "{name}" is invalid: {error}',
                    {**_details(kind, name), "causes": [
                        {"reason": "FieldValueInvalid", "message": error.problem,
                         "field": error.field}]})


def _selected(obj: Obj, selector: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class ApiServer:
    def __init__(self, objects: ObjectStore, metrics: Callable[[], bytes], *, port: int = 0,
                 status: Callable[[], Obj] = dict) -> None:
        self._server = _Server(("127.0.0.1", port), _ApiHandler)
        self._server.objects = objects
        self._server.metrics = metrics
        self._server.status = status
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="apiserver",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
