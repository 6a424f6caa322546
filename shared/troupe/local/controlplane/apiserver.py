"""A Kubernetes-style REST API on loopback, for kubectl and the `kubernetes` client.

It is served by waitress, a maintained WSGI server: HTTP/1.1 keep-alive for every verb
(bodies are read whole before dispatch, so a DELETE's DeleteOptions cannot spill into the
next request), and chunked streaming for watches, over TLS (tls_front.py: kubectl sends
its token only over TLS). Requests are dispatched by `ApiApp`: first the request checks
(access.py: the Host, the token, JSON writes), then discovery and OpenAPI (openapi.py),
then the resource paths (`rest.Resources`). Every failure is a `Status` object with the
API server's reason and code. The runtime's own metrics are at
/metrics and its status at /troupe/status.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from waitress.server import create_server
from werkzeug.wrappers import Request, Response

from troupe.local.controlplane import discovery, openapi, status
from troupe.local.controlplane.certificates import new_serving_certificate
from troupe.local.controlplane.kinds import Obj, kind_by_plural
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.controlplane.rest import Admit, Resources, Target, admit_unchanged, json_response
from troupe.local.controlplane.status import ApiError
from troupe.local.controlplane.tls_front import TlsFront
from troupe.local.host.processes import files_left

_log = logging.getLogger(__name__)

# Raises ApiError (401, 403...) to refuse a request before anything else reads it.
RequestCheck = Callable[[Request], None]
# Serves a path outside the resources (OpenAPI documents), or returns None.
ExtraRoute = Callable[[Request], Response | None]
# A watch holds a worker for as long as it streams; these leave room for plain requests.
_THREADS: Final = 32
_SUBRESOURCES: Final = ("status",)
_MAX_CONNECTIONS: Final = 100  # waitress's own default
# Waitress reads a body before the checks run, so an unauthenticated client could send
# up to its default of 1 GiB; Kubernetes' own API server takes at most 3 MiB.
_MAX_BODY: Final = 3 * 1024 * 1024


@dataclass(frozen=True)
class ClientLimits:
    """What slow or idle clients may hold, in waitress's settings. Waitress reads requests
    without a thread, so a slow client holds a connection, never a worker: the connection
    cap bounds what many of them cost (past it, waitress accepts no more until one goes),
    and a connection idle for `idle_s` (a request head stopped midway included; a watch
    being streamed is not idle) is closed within `sweep_s` after that."""

    connections: int | None = None  # default: _MAX_CONNECTIONS, or fewer on a low file limit
    idle_s: int = 60
    sweep_s: int = 10

    def connection_cap(self) -> int:
        """At most a quarter of the files the process may still open, at three files a
        client (its TLS socket, the relay's and waitress's ends of the Unix socket): the
        ingress takes half of what is left after, and Kafka, deliveries and functions need
        the rest."""
        if self.connections is not None:
            return self.connections
        return max(8, min(_MAX_CONNECTIONS, files_left(12 * _MAX_CONNECTIONS) // 12))


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
    """The API on https://127.0.0.1 (tls_front.py), served by waitress on a thread of its
    own behind a Unix socket in a folder only this user may enter."""

    def __init__(self, objects: ObjectStore, metrics: Callable[[], bytes], *, port: int = 0,
                 runtime_status: Callable[[], Obj] = dict, admit: Admit = admit_unchanged,
                 checks: Iterable[RequestCheck] = (), routes: Iterable[ExtraRoute] = (),
                 bookmark_interval: float = 10.0, limits: ClientLimits = ClientLimits()) -> None:
        self._objects = objects
        cap = limits.connection_cap()
        self.app = ApiApp(objects, metrics=metrics, runtime_status=runtime_status, admit=admit,
                          checks=checks, routes=routes, bookmark_interval=bookmark_interval)
        self._folder = Path(tempfile.mkdtemp(prefix="troupe-api-"))  # mode 0700
        self.certificate = new_serving_certificate()
        self.ca_file = self._folder / "ca.crt"
        self.ca_file.write_bytes(self.certificate.ca_pem)
        # A request lookahead lets waitress notice a client that went away, which a
        # watch checks so that an abandoned `kubectl get -w` frees its worker. The
        # listening socket and waitress's wake-up pipe count against its connection limit.
        self._server: Any = create_server(
            self.app, unix_socket=str(self._folder / "api.sock"), unix_socket_perms="600",
            threads=_THREADS, ident="troupe", clear_untrusted_proxy_headers=True,
            channel_request_lookahead=1, connection_limit=cap + 2,
            channel_timeout=limits.idle_s, cleanup_interval=limits.sweep_s,
            max_request_body_size=_MAX_BODY)
        # The front admits the same cap, so waitress never refuses a relayed client.
        self._front = TlsFront(port, str(self._folder / "api.sock"),
                               self.certificate.server_context(self._folder), cap)
        self.app.server_address = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.run, name="apiserver", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._front.port

    @property
    def busy_workers(self) -> int:
        """Requests being answered now; an open watch is one until it ends."""
        return int(self._server.task_dispatcher.active_count)

    @property
    def open_connections(self) -> int:
        """Client connections waitress holds now (past its cap, new ones wait unaccepted)."""
        return len(self._server.active_channels)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def close(self) -> None:
        """End the watches, close every connection and the listening socket, and wait."""
        self.app.stopping.set()
        self._objects.events.wake_all()
        # Closed in the loop's own thread (a trigger's thunk runs there): the loop ends
        # when nothing is left to watch, and no socket closes under a select() call.
        self._front.close()
        self._server.trigger.pull_trigger(self._close_all)
        self._thread.join(timeout=5)
        self._server.task_dispatcher.shutdown(timeout=5)
        shutil.rmtree(self._folder, ignore_errors=True)

    def _close_all(self) -> None:
        for dispatcher in list(self._server._map.values()):
            if dispatcher is self._server:
                # The listening socket has no close event of its own: wasyncore's default
                # handle_close warns "unhandled close event" before it closes.
                dispatcher.close()
            else:  # a channel ends its request and frees its buffers; the trigger its pipe
                dispatcher.handle_close()

