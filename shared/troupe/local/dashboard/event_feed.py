"""The broker's event log, followed from its beginning while the runtime runs: the events
of each run, a click away on the dashboard, and the model events its plots mark.

It reads Kafka as `troupe events --follow` does, without a consumer group, so the
Triggers' progress is never touched. Memory holds the newest events up to a bound.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.client.eventlog import EventLogError, LoggedEvent, read_events
from troupe.events import RUNID

log = logging.getLogger(__name__)
DEFAULT_KEEP: Final = 50_000
_RETRY_S: Final = 2.0

EventLogged = Callable[[CloudEvent], None]


def event_json(event: CloudEvent) -> dict[str, Any]:
    """An event as the dashboard shows it: its attributes and its data."""
    attributes = {name: value.isoformat() if isinstance(value, datetime) else value
                  for name, value in event.get_attributes().items()}
    data = event.get_data()
    if isinstance(data, bytes | bytearray):
        data = {"bytes": len(data)}
    return {"attributes": attributes, "data": data}


class EventFeed:
    def __init__(self, bootstrap_servers: str, topic: str, *, keep: int = DEFAULT_KEEP) -> None:
        self._servers = bootstrap_servers
        self._topic = topic
        self._lock = threading.Lock()
        self._events: deque[LoggedEvent] = deque(maxlen=keep)
        self._listeners: list[EventLogged] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._follow_forever, name="event-feed",
                                        daemon=True)

    def start(self) -> EventFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def subscribe(self, listener: EventLogged) -> None:
        with self._lock:
            self._listeners.append(listener)

    def events(self, runid: str | None = None) -> list[CloudEvent]:
        """The events followed so far (of one run), in the order the log holds them."""
        with self._lock:
            logged = list(self._events)
        return [entry.event for entry in logged
                if runid is None or str(entry.event.get_extension(RUNID)) == runid]

    def _follow_forever(self) -> None:
        # The next offset of each partition: after a failure, the log is read again from
        # its beginning, and what was already taken is skipped.
        following: dict[int, int] = {}
        while not self._stopping.is_set():
            try:
                for logged in read_events(self._servers, self._topic, follow=True,
                                          stop=self._stopping.is_set):
                    if logged.offset < following.get(logged.partition, 0):
                        continue
                    following[logged.partition] = logged.offset + 1
                    self._add(logged)
            except EventLogError as error:
                log.debug("event feed: %s; trying again", error)
            self._stopping.wait(_RETRY_S)

    def _add(self, logged: LoggedEvent) -> None:
        with self._lock:
            self._events.append(logged)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(logged.event)
            except Exception:
                log.exception("an event feed listener failed")


def event_time(event: CloudEvent) -> datetime | None:
    when = event.get_time()
    return when.astimezone(UTC) if when is not None else None
