"""One running copy of a revision: a gunicorn process on a free loopback port.

The process is forked from the prewarmed template when there is one (prewarm.py), and
started afresh otherwise: with `troupe up --no-prewarm`, when the template cannot fork,
or when the revision's environment sets what the template read as it started. Either way
it runs gunicorn with the same arguments, and the pool watches and stops it the same way.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from troupe.local.host.loopback_http import PortReservation
from troupe.local.host.processes import RunningProcess, SpawnedProcess
from troupe.local.serving.prewarm import InstanceTemplate, TemplateUnavailable
from troupe.local.serving.revision import Revision
from troupe.local.serving.template import InstanceRequest

# How often readiness is probed while a process boots. Connecting to a closed loopback
# port fails in microseconds, so a short interval costs little and cuts cold-start time.
_PROBE_INTERVAL = 0.002


@dataclass(frozen=True)
class LaunchSettings:
    project: Path
    log_dir: Path
    extra_env: Mapping[str, str]  # the runtime's own variables (store URL, kubeconfig...)
    startup_timeout: float = 30.0
    template: InstanceTemplate | None = None  # None: every instance is a fresh process


def gunicorn_arguments(folder: Path, port: int, threads: int, timeout: float) -> list[str]:
    # --preload imports the app before binding, so an open port means the app loaded and a
    # broken app makes the process exit instead of accepting connections it cannot serve.
    # --reuse-port: the port is a PortReservation, which only a SO_REUSEPORT socket may share.
    # --no-control-socket: gunicorn's control server (for gunicornc) is a thread running an
    # asyncio loop in the master, on one path per user: every instance would start one as
    # its worker boots, and take the socket over from the one before.
    return ["--chdir", str(folder), "main:app",
            "-b", f"127.0.0.1:{port}", "--reuse-port", "--workers", "1",
            "--threads", str(threads), "--no-control-socket",
            "--preload", "--timeout", str(int(timeout) + 5), "--graceful-timeout", "5",
            "--log-level", "warning"]


class Instance:
    def __init__(self, revision: Revision, settings: LaunchSettings, ordinal: int) -> None:
        self.revision = revision
        self.name = f"{revision.name}-{ordinal}"
        self._reservation = PortReservation()
        self.port = self._reservation.port
        self.in_flight = 0
        self.ready = False
        self.last_used = time.monotonic()
        self.started_at = 0.0
        self.ready_at = 0.0  # when it first accepted a connection (time.monotonic())
        self._settings = settings
        self._process: RunningProcess | None = None
        self._log_path = settings.log_dir / f"{self.name}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        folder = self._settings.project / "functions" / self.revision.image
        env = {**os.environ, **self.revision.env, **self._settings.extra_env,
               "PORT": str(self.port), "K_SERVICE": self.revision.service,
               "K_REVISION": self.revision.name,
               "K_CONFIGURATION": self.revision.service, "PYTHONUNBUFFERED": "1"}
        arguments = gunicorn_arguments(folder, self.port, self.revision.threads,
                                       self.revision.timeout_seconds)
        self._settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        template = self._settings.template
        if template is not None:
            request = InstanceRequest(str(folder), tuple(arguments), env, str(self._log_path))
            try:
                self._process = template.fork(request, self._settings.startup_timeout)
                return
            except TemplateUnavailable as error:
                self._note(f"not prewarmed, starting a fresh process: {error}")
        with open(self._log_path, "ab") as log:
            self._process = SpawnedProcess(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", *arguments],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True))  # Ctrl-C in the terminal goes to the runtime only

    def _note(self, line: str) -> None:
        with open(self._log_path, "a") as log:
            log.write(f"troupe: {line}\n")

    def wait_ready(self) -> bool:
        deadline = self.started_at + self._settings.startup_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    self.ready, self.ready_at = True, time.monotonic()
                    return True
            except OSError:
                time.sleep(_PROBE_INTERVAL)
        return False

    def alive(self) -> bool:
        return self._process is not None and self._process.running()

    @property
    def exit_code(self) -> int | None:
        """The process' exit status once it has ended, as Knative's ExitCode<N> reports it."""
        return self._process.poll() if self._process is not None else None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace: float = 5.0) -> None:
        # Instances are stopped only when idle (or at shutdown), so gunicorn's quick
        # shutdown (SIGQUIT) loses nothing and skips its graceful wait for idle keep-alive
        # sockets.
        if self._process is not None:
            self._process.stop(grace, signal.SIGQUIT)
        self._reservation.release()

    def kill(self) -> None:
        """SIGKILL now: for a stop that ran out of time."""
        if self._process is not None:
            self._process.kill()
