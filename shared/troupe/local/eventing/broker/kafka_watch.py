"""Noticing, within a quarter of a second, that Kafka stopped or started answering.

The data plane learns that Kafka is gone long after it is: the producer only fails a
write once its delivery timeout (10 s) runs out, and meanwhile the ingress keeps taking
events it cannot store. A TCP connection to a bootstrap server every CHECK_S is cheap on
loopback and says at once: the data plane then answers 503 with Retry-After instead of
taking events, shows its Brokers as not Ready, and, once Kafka answers again, puts back
what a Kafka that lost its memory (the embedded one, restarted) no longer has.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Final

CHECK_S: Final = 0.25
log = logging.getLogger(__name__)


def reachable(bootstrap_servers: str, timeout: float = CHECK_S) -> str | None:
    """None if a bootstrap server accepts a connection; otherwise why none did."""
    problem = "no bootstrap server"
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as error:
            problem = f"{address.strip()}: {error}"
    return problem


class KafkaWatch:
    """Calls `on_down(reason)` when Kafka stops accepting connections, and `on_up()` when
    it accepts them again; `on_up` returns False if the data plane could not recover yet
    (it is called again at the next check)."""

    def __init__(self, bootstrap_servers: str, on_down: Callable[[str], None],
                 on_up: Callable[[], bool]) -> None:
        self._bootstrap = bootstrap_servers
        self._on_down, self._on_up = on_down, on_up
        self._stopping = threading.Event()
        self.down = False
        self._thread = threading.Thread(target=self._watch, name="kafka-watch", daemon=True)

    def start(self) -> KafkaWatch:
        self._thread.start()
        return self

    def lost(self, problem: str) -> None:
        """Kafka is gone, as someone who knows says (the embedded Kafka's supervisor):
        down now, and back (`on_up`) once it answers, even if a check never saw it gone."""
        self.down = True
        self._on_down(problem)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def _watch(self) -> None:
        while not self._stopping.wait(CHECK_S):
            problem = reachable(self._bootstrap)
            if problem is not None and not self.down:
                self.down = True
                try:
                    self._on_down(f"Kafka at {self._bootstrap} does not answer ({problem})")
                except Exception:  # the watch must outlive a bad callback
                    log.exception("reporting that Kafka is down failed")
            elif problem is None and self.down:
                try:
                    self.down = not self._on_up()
                except Exception:
                    log.exception("recovering after Kafka came back failed; trying again")
