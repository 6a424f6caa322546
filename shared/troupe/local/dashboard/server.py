"""The dashboard's HTTP server on loopback: access first, then the route the path names.

Every answer carries headers that keep the pages to themselves: a content security policy
of 'self' only (nothing is loaded from elsewhere: the dashboard works offline), no
framing, no MIME sniffing, and no Referer (the login link carries the token).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from urllib.parse import parse_qs, quote, urlsplit

from troupe.local.dashboard.access import Access
from troupe.local.dashboard.http import (
    Answer,
    HttpError,
    Request,
    Response,
    Route,
    Stream,
    text_response,
)
from troupe.local.host.loopback_http import KeepAliveHandler, LoopbackHTTPServer

log = logging.getLogger(__name__)
LOGIN_PATH = "/login"
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_MAX_BODY = 16 * 1024 * 1024


class _Server(LoopbackHTTPServer):
    request_queue_size = 128
    access: Access
    routes: list[Route]
    stopping: threading.Event


class _DashboardHandler(KeepAliveHandler):
    server: _Server

    def _serve(self) -> None:
        url = urlsplit(self.path)
        # Lower-cased names: HTTP's are case-insensitive, a dict's keys are not.
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            body = self._read_body()
            request = Request(self.command, url.path, parse_qs(url.query), headers, body)
            answer = self._answer(request)
        except HttpError as error:
            answer = text_response(error.status, str(error))
        except Exception:
            log.exception("dashboard: %s %s failed", self.command, url.path)
            answer = text_response(500, "the dashboard failed; its log says why")
        if isinstance(answer, Stream):
            self._stream(answer)
        else:
            self._send(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _answer(self, request: Request) -> Answer:
        access = self.server.access
        if request.path == LOGIN_PATH and request.method == "GET":
            if not access.host_allowed(request.headers.get("host")):
                raise HttpError(403, "this dashboard answers only on its loopback address")
            if not access.login_allowed(request.arg("token")):
                raise HttpError(401, "the token is not this runtime's: use the link "
                                     "`troupe dashboard` prints")
            return Response(303, b"", headers={"Location": "/",
                                               "Set-Cookie": access.login_cookie()})
        refusal = access.refusal(request.method, request.headers)
        if refusal is not None:
            return text_response(refusal.status, refusal.message)
        allowed = []
        for route in self.server.routes:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            if route.method == request.method:
                return route.handle(Request(request.method, request.path, request.query,
                                            request.headers, request.body, match.groupdict()))
            allowed.append(route.method)
        if allowed:
            return Response(405, f"use {', '.join(allowed)}\n".encode(),
                            headers={"Allow": ", ".join(allowed)})
        return text_response(404, f"nothing at {request.path}")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise HttpError(413, f"at most {_MAX_BODY} bytes")
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in {**_SECURITY_HEADERS, **response.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _stream(self, stream: Stream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", stream.content_type)
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for chunk in stream.chunks:
                if self.server.stopping.is_set():
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            pass  # the page went away
        finally:
            close = getattr(stream.chunks, "close", None)
            if close is not None:
                close()


class DashboardServer:
    def __init__(self, token: str, routes: Sequence[Route], *, port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _DashboardHandler)
        self._server.routes = list(routes)
        self._server.stopping = threading.Event()
        self.access = Access(token, self._server.server_address[1])
        self._server.access = self.access
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2}, name="dashboard",
                                        daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def mount(self, routes: Sequence[Route]) -> None:
        """Add routes, ahead of those already there (the server answers meanwhile)."""
        self._server.routes = [*routes, *self._server.routes]

    @property
    def login_url(self) -> str:
        """The link that opens the dashboard: it sets the token's cookie, then goes to /."""
        return f"{self.url}{LOGIN_PATH}?token={quote(self.access.token, safe='')}"

    def close(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
