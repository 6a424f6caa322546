"""What a function consumes: the event types it declares, and the refusal of any other.

Every function names the types its handler is written for, as its Triggers do; an event
of another type reaching it (a Trigger filter gone wrong, a hand-made POST) is refused
with 422 before the handler runs, so a trainer never trains on a `training-finished`. A
generic consumer (the dead-letter sink, a subscriber that records everything) says so with
`ANY`, a named value, so that no function opts out by leaving the declaration empty.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, Literal

from troupe.events import resolve

from .errors import PermanentError


class AnyEventType(enum.Enum):
    """The one value of ANY: an enum member, so a type checker tells it from a collection."""

    ANY = "any"


ANY: Final = AnyEventType.ANY

# What `create_app(consumes=...)` takes: troupe.events type constants, or ANY.
Consumes = Collection[str] | Literal[AnyEventType.ANY]


class UnconsumedTypeError(PermanentError):
    """An event of a type the function does not consume: 422, naming what it accepts."""

    kind = "unconsumed-type"

    def __init__(self, event_type: str, accepted: frozenset[str]) -> None:
        self.event_type = event_type
        self.accepted = sorted(accepted)
        super().__init__(
            f"this function consumes {', '.join(self.accepted)}, not {event_type}: "
            "check the Trigger's filter, or send the event to the function that consumes it"
        )

    def answer_fields(self) -> dict[str, Any]:
        return {"accepted": self.accepted}


@dataclass(frozen=True)
class ConsumedTypes:
    """The CloudEvent types an app answers; `types` is None when it answers any type."""

    types: frozenset[str] | None

    @classmethod
    def declared(cls, consumes: Consumes) -> ConsumedTypes:
        """From a declaration: short names or types are resolved to CloudEvent types."""
        if consumes is ANY:
            return cls(None)
        if isinstance(consumes, str) or not isinstance(consumes, Collection):
            raise TypeError(
                f"consumes={consumes!r}: declare a collection of event types (the constants "
                "in troupe.events), or ANY for a function that takes every type"
            )
        if not consumes:
            raise ValueError(
                "consumes is empty: declare the event types the handler is written for, "
                "or ANY for a function that takes every type"
            )
        return cls(frozenset(resolve(name).type for name in consumes))

    @property
    def any(self) -> bool:
        return self.types is None

    def admits(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types

    def check(self, event_type: str) -> None:
        """Raise UnconsumedTypeError unless `event_type` is one this app answers."""
        if self.types is not None and event_type not in self.types:
            raise UnconsumedTypeError(event_type, self.types)


# An app that takes no events at all (an HTTP service such as the predictor).
NO_EVENTS: Final = ConsumedTypes(frozenset())
