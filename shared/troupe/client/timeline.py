"""Rebuilding a run from the event log: the view of a whole lifecycle that orchestrators
give for free and choreographies usually lack."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from troupe.events import MODELVERSION, RUNID, is_known, resolve

_FAILURE_WORDS = ("rejected", "failed", "degraded", "rolledback", "rollback")


@dataclass(frozen=True)
class Step:
    time: datetime | None
    service: str  # who produced the event
    type: str  # short name when known
    outcome: str  # ok, or the kind of bad news the event carries
    runid: str | None
    modelversion: str | None
    summary: str
    since_previous_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat() if self.time else None,
            "service": self.service,
            "type": self.type,
            "outcome": self.outcome,
            "runid": self.runid,
            "modelversion": self.modelversion,
            "summary": self.summary,
            "since_previous_s": self.since_previous_s,
        }


def short_type(event_type: str) -> str:
    return resolve(event_type).short if is_known(event_type) else event_type


def producer(event: CloudEvent) -> str:
    """The service that produced an event: troupe sources are /troupe/<service>."""
    source = event.get_source()
    return source.rsplit("/", 1)[-1] if source.startswith("/troupe/") else source


def outcome(event: CloudEvent) -> str:
    last = event.get_type().rsplit(".", 1)[-1]
    return last if last in _FAILURE_WORDS else "ok"


def fit(text: str, width: int) -> str:
    """`text` cut to `width` characters, with an ellipsis when it was longer."""
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def summarize(data: Any, width: int = 80) -> str:
    """A short k=v line of an event's data for one-line displays."""
    if not isinstance(data, dict):
        text = "" if data is None else str(data)
    else:
        parts = []
        for key, value in data.items():
            if isinstance(value, str) and len(value) == 64:  # a sha256: its prefix is enough
                value = value[:12]
            elif isinstance(value, list | dict):
                value = f"[{len(value)}]" if isinstance(value, list) else "{...}"
            elif isinstance(value, float):
                value = f"{value:.4g}"
            parts.append(f"{key}={value}")
        text = " ".join(parts)
    return fit(text, width)


def runs_of_model(events: Iterable[CloudEvent], version: str) -> set[str]:
    """The runids of every run that touched a model version."""
    found = set()
    for event in events:
        data = event.get_data()
        named = event.get_extension(MODELVERSION) == version or (
            isinstance(data, dict) and data.get("version") == version
        )
        if named and event.get_extension(RUNID):
            found.add(str(event.get_extension(RUNID)))
    return found


def build_timeline(events: Iterable[CloudEvent], runids: set[str]) -> list[Step]:
    """The events of the given runs, in time order, as steps with the time between them."""
    unique: dict[tuple[str, str], CloudEvent] = {}
    for event in events:
        # Delivery is at-least-once, so the log may hold an event twice: same (source, id).
        if str(event.get_extension(RUNID)) in runids:
            unique.setdefault((event.get_source(), event.get_id()), event)
    chosen = sorted(
        unique.values(), key=lambda e: (e.get_time() or datetime.min, e.get_id())
    )
    steps: list[Step] = []
    previous: datetime | None = None
    for event in chosen:
        when = event.get_time()
        gap = (when - previous).total_seconds() if when and previous else None
        steps.append(
            Step(
                time=when,
                service=producer(event),
                type=short_type(event.get_type()),
                outcome=outcome(event),
                runid=event.get_extension(RUNID),
                modelversion=event.get_extension(MODELVERSION),
                summary=summarize(event.get_data()),
                since_previous_s=round(gap, 3) if gap is not None else None,
            )
        )
        previous = when or previous
    return steps
