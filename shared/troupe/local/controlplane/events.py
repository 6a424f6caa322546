"""The store's recent changes, numbered by resourceVersion, for watches to follow and resume.

A watch that names a resourceVersion gets every change after it, as from the API server's
watch cache. The log keeps the last few thousand; a version older than that is gone, and
the watch is told so (410 Expired), so that the client lists again instead of missing a
change. Each event keeps the object before the change too, so a watch with a selector sees
an object leave it (DELETED) or enter it (ADDED) as the API server reports it.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal

from troupe.local.controlplane.kinds import Kind, Obj
from troupe.local.errors import LocalError

Change = Literal["ADDED", "MODIFIED", "DELETED"]


class Expired(LocalError, LookupError):
    """The changes after this resourceVersion are no longer kept."""


@dataclass(frozen=True)
class Event:
    version: int
    change: Change
    kind: Kind
    obj: Obj  # never mutated once recorded
    previous: Obj | None


class EventLog:
    def __init__(self, lock: threading.RLock, size: int) -> None:
        self._events: deque[Event] = deque(maxlen=size)
        self._changed = threading.Condition(lock)
        self._horizon = 0  # every change after this version is in the log
        self._latest = 0

    def record(self, version: int, change: Change, kind: Kind, obj: Obj,
               previous: Obj | None) -> None:
        """Called with the store's lock held, as the change is made."""
        if len(self._events) == self._events.maxlen:
            self._horizon = self._events[0].version
        self._events.append(Event(version, change, kind, obj, previous))
        self._latest = version
        self._changed.notify_all()

    def reset(self, version: int) -> None:
        """Forget what came before `version` (a restart restored the objects)."""
        with self._changed:
            self._events.clear()
            self._horizon = self._latest = version

    def after(self, version: int, kind: Kind) -> tuple[list[Event], int]:
        """The changes to objects of `kind` after `version`, oldest first, and the latest
        version they are complete up to."""
        with self._changed:
            if version < self._horizon:
                raise Expired(f"too old resource version: {version} ({self._horizon})")
            return ([e for e in self._events if e.version > version and e.kind == kind],
                    self._latest)

    @property
    def latest(self) -> int:
        with self._changed:
            return self._latest

    def wait_past(self, version: int, timeout: float) -> None:
        """Return once a change after `version` is recorded, or after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._latest > version, timeout)

    def wake_all(self) -> None:
        """Wake every waiting watch (the server is closing)."""
        with self._changed:
            self._changed.notify_all()
