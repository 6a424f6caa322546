"""A Kubernetes-style REST API on loopback, for kubectl and the `kubernetes` client.

It is served by waitress, a maintained WSGI server: HTTP/1.1 keep-alive for every verb
(bodies are read whole before dispatch, so a DELETE's DeleteOptions cannot spill into the
next request), and chunked streaming for watches. Requests are dispatched by `ApiApp`:
first the request checks (the place where authentication and a Host check go), then
discovery and OpenAPI (openapi.py), then the resource paths (`rest.Resources`). Every failure is a
`Status` object with the API server's reason and code. The runtime's own metrics are at
/metrics and its status at /troupe/status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any, Final

from waitress.server import create_server
from werkzeug.wrappers import Request, Response

from troupe.local.controlplane import discovery, openapi, status
from troupe.local.controlplane.kinds import Obj, kind_by_plural
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.controlplane.rest import Admit, Resources, Target, admit_unchanged, json_response
from troupe.local.controlplane.status import ApiError

_log = logging.getLogger(__name__)

# Raises ApiError (401, 403...) to refuse a request before anything else reads it.
RequestCheck = Callable[[Request], None]
# Serves a path outside the resources (OpenAPI documents), or returns None.
ExtraRoute = Callable[[Request], Response | None]
# A watch holds a worker for as long as it streams; these leave room for plain requests.
_THREADS: Final = 32
_SUBRESOURCES: Final = ("status",)


def resolve(path: str) -> Target | None:
    """The resource a path names: /api/v1/..., /apis/<group>/<version>/... with an optional
    namespaces/<ns>/ part, then <plural>[/<name>[/<subresource>]]."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (
            len(rest) == 3 and rest[2] in _SUBRESOURCES and not group):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    kind = kind_by_plural(group, rest[0])
    if kind is None or version not in kind.versions:
        return None
    if namespace is not None and not kind.namespaced:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Target(kind, version, namespace, name, subresource)


class ApiApp:
    """The WSGI application behind the API."""

    def __init__(self, objects: ObjectStore, *, metrics: Callable[[], bytes],
                 runtime_status: Callable[[], Obj], admit: Admit = admit_unchanged,
                 checks: Iterable[RequestCheck] = (), routes: Iterable[ExtraRoute] = (),
                 bookmark_interval: float = 10.0) -> None:
        self.stopping = threading.Event()
        self._checks = tuple(checks)
        self._routes = tuple(routes)
        self._metrics = metrics
        self._runtime_status = runtime_status
        self._resources = Resources(objects, admit, self.stopping, bookmark_interval)
        self.server_address = ""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            request.get_data()  # read the whole body, whatever the verb
            for check in self._checks:
                check(request)
            response = self._dispatch(request)
        except ApiError as error:
            response = json_response(error.code, error.status(), list(error.headers.items()))
        except Exception:
            _log.exception("the API failed on %s %s", request.method, request.path)
            response = json_response(500, status.failure(
                500, "InternalError", f"an internal error answering {request.method} "
                f"{request.path}; the runtime's log has the details"))
        if not response.is_streamed:
            return response(environ, start_response)
        write: Callable[[bytes], Any] | None = None

        def remember_write(*args: Any) -> Callable[[bytes], Any]:
            nonlocal write
            write = start_response(*args)
            return write
        body = response(environ, remember_write)
        if write is not None:
            write(b"")  # the headers now: a quiet watch is an open one, not a hung one
        return body

    def _dispatch(self, request: Request) -> Response:
        path = "/" + request.path.strip("/")
        if request.method == "GET":
            fixed = self._fixed(path)
            if fixed is not None:
                return fixed
            for route in self._routes:
                served = route(request)
                if served is not None:
                    return served
        target = resolve(path)
        if target is None:
            raise status.path_not_found(request.method, path)
        return self._resources.handle(request, target)

    def _fixed(self, path: str) -> Response | None:
        if path == "/metrics":
            return Response(self._metrics(), content_type="text/plain; version=0.0.4")
        if path in ("/healthz", "/readyz", "/livez"):
            return Response(b"ok", content_type="text/plain")
        if path.startswith("/openapi/"):
            return self._openapi(path)
        document: Obj | None = None
        if path == "/troupe/status":
            document = self._runtime_status()
        elif path == "/version":
            document = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-troupe",
                        "platform": "linux/amd64"}
        elif path == "/api":
            document = discovery.core_versions(self.server_address)
        elif path == "/apis":
            document = discovery.api_groups()
        else:
            parts = path.split("/")[1:]
            if parts[0] == "api" and len(parts) == 2:
                document = discovery.resource_list("", parts[1])
            elif parts[0] == "apis" and len(parts) in (2, 3):
                document = (discovery.api_group(parts[1]) if len(parts) == 2
                            else discovery.resource_list(parts[1], parts[2]))
                if document is None:
                    raise status.path_not_found("GET", path)
        return None if document is None else json_response(200, document)


    @staticmethod
    def _openapi(path: str) -> Response:
        if path == "/openapi/v2":
            served: bytes | None = openapi.v2_document()
        elif path == "/openapi/v3":
            served = openapi.v3_root()
        else:
            parts = path.split("/")[3:]  # /openapi/v3/apis/<group>/<version>, /api/v1
            served = (openapi.group_version_document(parts[1], parts[2])
                      if len(parts) == 3 and parts[0] == "apis"
                      else openapi.group_version_document("", parts[1])
                      if len(parts) == 2 and parts[0] == "api" else None)
        if served is None:
            raise status.path_not_found("GET", path)
        return Response(served, content_type="application/json")


class ApiServer:
    """The API on 127.0.0.1, served by waitress on a thread of its own."""

    def __init__(self, objects: ObjectStore, metrics: Callable[[], bytes], *, port: int = 0,
                 runtime_status: Callable[[], Obj] = dict, admit: Admit = admit_unchanged,
                 checks: Iterable[RequestCheck] = (), routes: Iterable[ExtraRoute] = (),
                 bookmark_interval: float = 10.0) -> None:
        self._objects = objects
        self.app = ApiApp(objects, metrics=metrics, runtime_status=runtime_status, admit=admit,
                          checks=checks, routes=routes, bookmark_interval=bookmark_interval)
        # A request lookahead lets waitress notice a client that went away, which a
        # watch checks so that an abandoned `kubectl get -w` frees its worker.
        self._server: Any = create_server(
            self.app, host="127.0.0.1", port=port, threads=_THREADS, ident="troupe",
            clear_untrusted_proxy_headers=True, channel_timeout=300,
            channel_request_lookahead=1)
        self.app.server_address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.run, name="apiserver", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    @property
    def busy_workers(self) -> int:
        """Requests being answered now; an open watch is one until it ends."""
        return int(self._server.task_dispatcher.active_count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """End the watches, close every connection and the listening socket, and wait."""
        self.app.stopping.set()
        self._objects.events.wake_all()
        # Closed in the loop's own thread (a trigger's thunk runs there): the loop ends
        # when nothing is left to watch, and no socket closes under a select() call.
        self._server.trigger.pull_trigger(self._close_all)
        self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown(timeout=5)

    def _close_all(self) -> None:
        for dispatcher in list(self._server._map.values()):
            dispatcher.handle_close()

