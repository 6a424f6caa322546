"""Following the event log in the background, so the demo can wait on what happened."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from cloudevents.core.v1.event import CloudEvent

from troupe.client.eventlog import EventLogError, read_events


class Stalled(Exception):
    """Something the loop needs did not happen in time; the message says what."""


class EventWatcher:
    def __init__(self, bootstrap_servers: str, topic: str, since: datetime,
                 on_event: Callable[[CloudEvent], None] | None = None) -> None:
        self._bootstrap = bootstrap_servers
        self._topic = topic
        self._since = since
        self._on_event = on_event
        self._events: list[CloudEvent] = []
        self._seen: set[tuple[str, str]] = set()
        self._changed = threading.Condition()
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="demo-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @property
    def events(self) -> list[CloudEvent]:
        with self._changed:
            return list(self._events)

    def _follow(self) -> None:
        try:
            for logged in read_events(self._bootstrap, self._topic, since=self._since,
                                      follow=True, stop=self._stop.is_set):
                event = logged.event
                key = (event.get_source(), event.get_id())
                with self._changed:
                    if key not in self._seen:  # at-least-once: the log may repeat an event
                        self._seen.add(key)
                        self._events.append(event)
                        if self._on_event:
                            self._on_event(event)
                    self._changed.notify_all()
        except EventLogError as error:
            with self._changed:
                self._error = str(error)
                self._changed.notify_all()

    def wait_for(self, what: str, predicate: Callable[[CloudEvent], bool],
                 timeout: float) -> CloudEvent:
        """The first event (already seen or still to come) matching `predicate`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for event in self._events:
                    if predicate(event):
                        return event
                if self._error:
                    raise Stalled(f"the event log cannot be read: {self._error}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Stalled(f"no {what} within {timeout:.0f} s")
                self._changed.wait(remaining)
