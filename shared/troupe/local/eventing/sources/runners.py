"""PingSource's runner, and what every source delivers with: a CloudEvent in binary mode
through the runtime's one client and retry policy (troupe.local.delivery). KafkaSource's
runner is in kafka_source.py.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import PING, to_http_binary
from troupe.local.controlplane.kinds import Obj
from troupe.local.controlplane.resources import INTERVAL_ANNOTATION
from troupe.local.delivery import (
    Backoff,
    DeliveryAborted,
    DeliveryClient,
    RetryPlan,
    send_with_retries,
)
from troupe.local.errors import LocalError
from troupe.local.eventing.sources.cron import CronSchedule

# Knative's PingSource has no delivery spec: its ticks are retried this way.
PING_RETRIES: Final = Backoff(retry=5, delay_s=0.2)
# A PingSource's attempts; its adapter's default is Knative's per-request one.
PING_TIMEOUT_S: Final = 30.0
_log = logging.getLogger("troupe.local.eventing.sources.runners")

SinkResolver = Callable[[str, Obj], str | None]  # (namespace, destination) -> URL


class SinkUnavailable(LocalError):
    pass


def deliver(client: DeliveryClient, url: str, event: CloudEvent, plan: RetryPlan,
            timeout: float, stopping: threading.Event) -> None:
    """POST `event` in binary mode, retried as the runtime's one policy says; raises
    SinkUnavailable with the last attempt's outcome when it failed for good."""
    message = to_http_binary(event)
    headers = dict(message.headers)
    attempt = send_with_retries(
        lambda: client.send(url, headers, message.body, timeout, stopping=stopping),
        plan, stopping)
    if not attempt.ok:
        raise SinkUnavailable(f"{url}: {attempt.describe()}")


class PingSourceRunner:
    """Ticks on the cron schedule (or every `troupe.dev/interval-seconds`)."""

    def __init__(self, obj: Obj, resolve_sink: SinkResolver, client: DeliveryClient) -> None:
        metadata = obj["metadata"]
        self._client = client
        self.namespace, self.name = metadata["namespace"], metadata["name"]
        self._spec = obj["spec"]
        interval = (metadata.get("annotations") or {}).get(INTERVAL_ANNOTATION)
        self._interval = float(interval) if interval is not None else None
        self._schedule = CronSchedule.parse(self._spec["schedule"], self._spec.get("timezone"))
        self._resolve_sink = resolve_sink
        self._stopping = threading.Event()
        self.ticks = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"ping-{self.name}", daemon=True)
        self._thread.start()

    def _next_wait(self) -> float:
        if self._interval is not None:
            return self._interval
        now = datetime.now(UTC)
        return (self._schedule.next_after(now) - now).total_seconds()

    def _event(self) -> CloudEvent:
        content_type = self._spec.get("contentType") or "application/json"
        data: Any = None
        if self._spec.get("dataBase64"):
            data = base64.b64decode(self._spec["dataBase64"])
        elif self._spec.get("data") is not None:
            raw = str(self._spec["data"])
            data = json.loads(raw) if content_type == "application/json" else raw.encode()
        attributes = {"type": PING, "id": str(uuid.uuid4()), "specversion": "1.0",
                      "source": f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}",
                      "time": datetime.now(UTC), "datacontenttype": content_type}
        return CloudEvent(attributes, data)

    def _run(self) -> None:
        while not self._stopping.wait(self._next_wait()):
            url = self._resolve_sink(self.namespace, self._spec["sink"])
            if url is None:
                self.last_error = f"sink {self._spec['sink']} does not resolve"
                continue
            try:
                deliver(self._client, url, self._event(), PING_RETRIES, PING_TIMEOUT_S,
                        self._stopping)
                self.ticks += 1
                self.last_error = None
            except DeliveryAborted:
                return
            except (SinkUnavailable, ValueError) as error:
                self.last_error = str(error)
                _log.warning("pingsource %s/%s: %s", self.namespace, self.name, error)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
