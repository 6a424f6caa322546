"""Replies already given, so a redelivered event gets the same answer without rerunning.

Entries are keyed by a sha256 of (service, event source, event id): any source or id,
however long or full of slashes, makes a safe key of fixed length.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import StoreError

if TYPE_CHECKING:
    from .store import Store


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class ReplyCache:
    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, service: str, source: str, event_id: str) -> Reply | None:
        key = reply_key(service, source, event_id)
        entry = self._store.read_json(key, None)
        if entry is None:
            return None
        try:
            if (entry["service"], entry["source"], entry["id"]) != (service, source, event_id):
                return None  # a sha256 collision; never seen, but never answer for another
            return Reply(
                status=int(entry["status"]),
                headers={str(k): str(v) for k, v in entry["headers"].items()},
                body=base64.b64decode(entry["body"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(
                f"the cached reply at {self._store.resolve(key)} is damaged ({error!r}); "
                "delete it and the event will be handled again"
            ) from error

    def put(self, service: str, source: str, event_id: str, reply: Reply) -> None:
        entry: dict[str, Any] = {
            "service": service,
            "source": source,
            "id": event_id,
            "status": int(reply.status),
            "headers": dict(reply.headers),
            "body": base64.b64encode(reply.body).decode("ascii"),
        }
        self._store.write_json(reply_key(service, source, event_id), entry)


def reply_key(service: str, source: str, event_id: str) -> str:
    digest = hashlib.sha256("\n".join((service, source, event_id)).encode()).hexdigest()
    return f"replies/{digest[:2]}/{digest}.json"
