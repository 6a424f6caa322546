"""What the demo reports about alarms: each `metric-degraded`, and how late it came.

A user judges a drift detector by what it cost them: how many of their predictions were
answered, and how long it took, between the drift and the alarm. So each alarm is stamped
when the demo sees it with the labeled predictions its traffic had received since the
drift began (since the start, when nothing drifts) and the seconds since then.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from cloudevents.core.v1.event import CloudEvent

from troupe.events import METRIC_DEGRADED

from .traffic import TrafficDriver


class _Result(Protocol):
    alarms: list[dict[str, Any]]
    detection_delay_predictions: int | None
    detection_delay_seconds: float | None


def alarm_of_kind(kind: str, model: str) -> Callable[[CloudEvent], bool]:
    def matches(event: CloudEvent) -> bool:
        data = event.get_data()
        return (event.get_type() == METRIC_DEGRADED and isinstance(data, dict)
                and data.get("kind") == kind and data.get("model") == model)

    return matches


class AlarmLog:
    """Stamps each metric-degraded with the traffic's count since the phase it follows."""

    def __init__(self, model: str) -> None:
        self._model = model  # alarms about other models (earlier runs) are not this run's
        self._lock = threading.Lock()
        self._traffic: TrafficDriver | None = None
        self._phase = ""
        self._since = time.monotonic()
        self.alarms: list[dict[str, Any]] = []

    def follow(self, traffic: TrafficDriver, phase: str) -> None:
        """Count from now on: the drift (or the start) is this phase's beginning."""
        with self._lock:
            self._traffic, self._phase, self._since = traffic, phase, time.monotonic()

    def since_phase(self) -> tuple[int, float]:
        """Labeled predictions and seconds since the phase being followed began."""
        with self._lock:
            counted = self._traffic.tally.labeled[self._phase] if self._traffic else 0
            return int(counted), round(time.monotonic() - self._since, 3)

    def recording(self, on_event: Callable[[CloudEvent], None]) -> Callable[[CloudEvent], None]:
        def record(event: CloudEvent) -> None:
            data = event.get_data()
            if (event.get_type() == METRIC_DEGRADED and isinstance(data, dict)
                    and data.get("model") == self._model):
                counted, seconds = self.since_phase()
                with self._lock:
                    self.alarms.append({
                        "kind": data.get("kind"), "metric": data.get("metric"),
                        "version": data.get("version"), "at_predictions": counted,
                        "at_seconds": seconds, "test": data.get("test"),
                    })
            on_event(event)

        return record

    def report_into(self, result: _Result, expected_kind: str) -> None:
        """Copy the alarms, and the delay of the first one of the kind the scenario
        should raise, into the demo's result."""
        with self._lock:
            result.alarms = list(self.alarms)
            first = next((a for a in self.alarms if a["kind"] == expected_kind), None)
        if first is not None:
            result.detection_delay_predictions = first["at_predictions"]
            result.detection_delay_seconds = first["at_seconds"]
