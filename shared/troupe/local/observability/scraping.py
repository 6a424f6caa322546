"""Prometheus for the local runtime: started when the binary is on PATH, its file_sd
targets rewritten whenever a function process starts or stops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from troupe.local.observability.prometheus import PrometheusError, PrometheusServer, find_prometheus

RUNTIME_JOB = "troupe-runtime"
_log = logging.getLogger("troupe.local")

Targets = Callable[[], list[tuple[str, str, str]]]  # (address, service, revision)


class Observability:
    def __init__(self, workdir: Path, runtime_address: str, targets: Targets,
                 say: Callable[[str], None]) -> None:
        self._workdir = workdir
        self._runtime_address = runtime_address
        self._targets = targets
        self._say = say
        self._server: PrometheusServer | None = None
        self._jobs: set[str] = set()
        self._lock = threading.Lock()
        self.unavailable_reason: str | None = None

    @property
    def url(self) -> str | None:
        return self._server.url if self._server else None

    def start(self) -> None:
        if find_prometheus() is None:
            self.unavailable_reason = ("prometheus is not on PATH: monitoring is unavailable "
                                       "(install the Debian package 'prometheus' to enable it)")
            self._say(self.unavailable_reason)
            return
        server = PrometheusServer(self._workdir, scrape_interval="1s")
        try:
            server.start()
        except PrometheusError as error:
            self.unavailable_reason = f"prometheus did not start ({error}): monitoring is off"
            self._say(self.unavailable_reason)
            return
        self._server = server
        server.set_targets(RUNTIME_JOB, [self._runtime_address])
        self.refresh()

    def refresh(self) -> None:
        """Rewrite every service's target file from the instances running now."""
        server = self._server
        if server is None:
            return
        by_service: dict[str, list[str]] = {}
        for address, service, _revision in self._targets():
            by_service.setdefault(service, []).append(address)
        with self._lock:
            for job in self._jobs - set(by_service):
                server.set_targets(job, [])
            for job, addresses in by_service.items():
                server.set_targets(job, sorted(addresses), {"service": job})
            self._jobs = set(by_service)

    def kill(self) -> None:
        """SIGKILL Prometheus: for a stop that ran out of time."""
        server = self._server
        if server is not None:
            server.kill()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
