"""One root for everything that can be wrong with an event.

Each subclass also derives from the builtin a caller would expect, as the cloudevents SDK
does, so `except ValueError` keeps working for code that does not know troupe. The errors
an HTTP receiver answers name their answer, as werkzeug's exceptions do: `status_code`,
and `kind` for the `error` field of the JSON body.
"""

from __future__ import annotations

from typing import ClassVar


class EventError(Exception):
    """Root of the errors raised by `troupe.events`."""


class UnknownEventTypeError(EventError, KeyError):
    """The type is not in troupe's vocabulary."""

    status_code: ClassVar[int] = 422
    kind: ClassVar[str] = "unknown-type"

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(
            f"unknown event type {name!r}: use a short name or a type from the vocabulary "
            f"({', '.join(known)})"
        )

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class InvalidEventDataError(EventError, ValueError):
    """The event's data does not match the JSON Schema of its type."""

    status_code: ClassVar[int] = 422
    kind: ClassVar[str] = "invalid-data"

    def __init__(self, event_type: str, problems: list[tuple[str, str]]) -> None:
        # problems: (JSON path of the field, what is wrong with it)
        self.event_type = event_type
        self.problems = problems
        detail = "; ".join(f"{path}: {message}" for path, message in problems)
        super().__init__(f"data of {event_type} is invalid: {detail}")

    @property
    def fields(self) -> list[str]:
        return [path for path, _ in self.problems]


class InvalidExtensionError(EventError, ValueError):
    """An extension attribute's name or value breaks the CloudEvents rules."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        super().__init__(f"extension {name!r} is invalid: {reason}")


class MalformedEventError(EventError, ValueError):
    """A message is not a valid CloudEvent."""

    status_code: ClassVar[int] = 400
    kind: ClassVar[str] = "malformed-event"


class UnsupportedMediaTypeError(EventError, ValueError):
    """A message's content type is neither binary-mode data nor a known event format."""

    status_code: ClassVar[int] = 415
    kind: ClassVar[str] = "unsupported-media-type"
