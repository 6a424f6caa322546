"""The HTTP front of a Knative Service: one loopback listener per service and per tag.

Each front proxies to an instance the activator picks. The service's front splits
requests between revisions by `spec.traffic` percentages (smooth weighted round robin,
so 80/20 over 1,000 requests is 800/200, not "about"); a tag's front always goes to its
revision.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from troupe.local.delivery import AttemptFailed, DeliveryClient, Response
from troupe.local.host.loopback_http import BoundedThreadingHTTPServer, KeepAliveHandler
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.serving.pool import RevisionPool, Unavailable

# What a front reads of an instance's answer: a batch of predictions fits many times over.
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
# Headers that describe one hop, never forwarded (RFC 9110 7.6.1).
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
               "trailer", "transfer-encoding", "upgrade", "proxy-connection"}


class Split:
    """Revisions and their percentages; `pick` is smooth weighted round robin."""

    def __init__(self, targets: list[tuple[RevisionPool, int]]) -> None:
        self._targets = [(pool, percent) for pool, percent in targets if percent > 0]
        self._current = [0] * len(self._targets)
        self._lock = threading.Lock()

    def pick(self) -> RevisionPool | None:
        if not self._targets:
            return None
        with self._lock:
            total = 0
            for index, (_, weight) in enumerate(self._targets):
                self._current[index] += weight
                total += weight
            best = max(range(len(self._targets)), key=self._current.__getitem__)
            self._current[best] -= total
            return self._targets[best][0]


class _Server(BoundedThreadingHTTPServer):
    request_queue_size = 256  # a burst of concurrent requests must not overflow the backlog
    choose: Callable[[], RevisionPool | None]
    service: str
    metrics: RuntimeMetrics
    client: DeliveryClient


class _ProxyHandler(KeepAliveHandler):
    server: _Server

    def _proxy(self) -> None:
        arrived = time.monotonic()
        body = self._read_body()
        pool = self.server.choose()
        if pool is None:
            self._answer(503, f"{self.server.service} has no revision to route to\n")
            return
        status = 500  # what the request is counted as if answering it fails midway
        try:
            status = self._proxy_to(pool, body)
        finally:
            pool.meter.request_finished(self.command, status, time.monotonic() - arrived)

    def _proxy_to(self, pool: RevisionPool, body: bytes) -> int:
        try:
            instance = pool.acquire(pool.revision.priorities.level_of(self.headers.items(), body))
        except Unavailable as error:
            self.server.metrics.activator_rejected.labels(self.server.service, error.reason).inc()
            self._answer(503, f"{error}\n")
            return 503
        served: float | None = None
        try:
            sent = time.monotonic()
            response = self._forward(instance.port, body, pool.revision.timeout_seconds)
            served = time.monotonic() - sent
            pool.meter.service_finished(response.status, served)
        except AttemptFailed as error:
            if not instance.alive():
                pool.forget(instance)
            status = 504 if "TimeoutError" in str(error) else 502
            self._answer(status, f"{instance.name} did not answer: {error}\n")
            return status
        finally:
            pool.release(instance, served)
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name not in _HOP_BY_HOP and name != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        return response.status

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _proxy

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self, port: int, body: bytes, timeout: float) -> Response:
        """One call to the instance, through the runtime's delivery client: the revision's
        timeoutSeconds is its deadline, to the last byte, and the answer is capped. It is
        not retried here: what is retried is decided by whoever sent the request (the
        Broker retries by Knative's table)."""
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length",
                                                                          "host")}
        headers["X-Forwarded-For"] = self.client_address[0]
        return self.server.client.send(f"http://127.0.0.1:{port}{self.path}", headers, body,
                                       timeout, method=self.command,
                                       max_response_bytes=MAX_RESPONSE_BYTES)

    def _answer(self, status: int, text: str) -> None:
        payload = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(payload)


class Front:
    """One listener on 127.0.0.1; `choose` says which revision pool gets each request."""

    def __init__(self, service: str, metrics: RuntimeMetrics, client: DeliveryClient,
                 port: int = 0, *, max_connections: int | None = None) -> None:
        self._server = _Server(("127.0.0.1", port), _ProxyHandler)
        if max_connections is not None:
            self._server.max_connections = max_connections
        self._server.client = client
        self._server.service = service
        self._server.metrics = metrics
        self._server.choose = lambda: None
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name=f"front-{service}", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def route(self, choose: Callable[[], RevisionPool | None]) -> None:
        self._server.choose = choose

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
