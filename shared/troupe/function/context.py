"""What a handler is given besides its event: settings, the store, a logger, and `reply`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from cloudevents.core.v1.event import CloudEvent

from troupe.events import make_event, resolve

from .settings import Settings

if TYPE_CHECKING:
    from troupe.store import Store

S = TypeVar("S", bound=Settings)

# Reply ids are derived from the event they answer, so a redelivered event yields the very
# same reply even if the reply cache was lost: downstream de-duplicates on (source, id).
_REPLY_NAMESPACE = uuid.UUID("6f6e2f4e-7472-6f75-7065-2d7265706c79")


def reply_id(cause: CloudEvent, reply_type: str) -> str:
    key = f"{cause.get_source()}\n{cause.get_id()}\n{reply_type}"
    return str(uuid.uuid5(_REPLY_NAMESPACE, key))


@dataclass(frozen=True)
class Context(Generic[S]):
    settings: S
    store: Store
    event: CloudEvent
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("troupe.function"))
    # When the function took the event in, by its own clock (Unix seconds): the time its
    # cooldowns and rate limits go by, never the event's `time`, which the sender writes.
    received_at: float = field(default_factory=time.time)

    def reply(
        self,
        name: str,
        data: Mapping[str, Any] | None,
        *,
        extensions: Mapping[str, Any] | None = None,
        subject: str | None = None,
    ) -> CloudEvent:
        """The event that says what this handler did, carrying the cause's lineage."""
        return make_event(
            name,
            data,
            cause=self.event,
            source=self.settings.event_source,
            subject=subject,
            extensions=extensions,
            event_id=reply_id(self.event, resolve(name).type),
        )
