"""Replies already given, and deliveries under way, so that each event is handled once.

Knative delivers at least once, and may hand the same (source, id) to two instances of a
function at the same moment. So a delivery first claims its event here: `create_json`
makes the entry atomically, and only the delivery that made it runs the handler. The claim
carries a lease that its owner renews while the handler runs; a claim whose lease lapsed
(its process died) may be taken over. The final reply then replaces the claim, and every
later delivery is answered with it.

Entries expire: a claim when its lease does, a reply after the cache's time to live (7
days by default), and the functions sweep expired ones as they work (expiry.py).
Entries are keyed by a sha256 of (service, event source, event id): any source or id,
however long or full of slashes, makes a safe key of fixed length. Every change after
the create goes through `update_json` or `delete_json_if`, so none is lost to a race.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from .errors import StoreError
from .expiry import EXPIRES_AT, entry_key

if TYPE_CHECKING:
    from .store import Store

REPLIES_FOLDER: Final = "replies"
_CLAIMED: Final = "claimed"
_ANSWERED: Final = "answered"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Claim:
    """What claiming an event came to: `owned` when this delivery now holds it; otherwise
    the reply already given, or until when another delivery holds it (`busy_until`)."""

    owned: bool
    reply: Reply | None = None
    busy_until: float | None = None


@dataclass(frozen=True)
class EventRef:
    """One event as one service sees it: the unit a claim and a reply are kept for."""

    service: str
    source: str
    event_id: str

    @property
    def key(self) -> str:
        return entry_key(REPLIES_FOLDER, self.service, self.source, self.event_id)

    def entry(self, **fields: Any) -> dict[str, Any]:
        return {"service": self.service, "source": self.source, "id": self.event_id, **fields}


class ReplyCache:
    def __init__(self, store: Store) -> None:
        self._store = store

    def claim(self, event: EventRef, *, owner: str, lease_seconds: float, now: float) -> Claim:
        """Claim `event` for the delivery `owner` until now + lease_seconds, unless a reply
        was given or another delivery holds a live lease on it."""
        claim = event.entry(state=_CLAIMED, owner=owner, lease_until=now + lease_seconds,
                            **{EXPIRES_AT: now + lease_seconds})
        # Not fsynced: a claim forgotten in an operating-system crash lets a redelivery run
        # the handler again, which at-least-once delivery allows; the answer is durable.
        if self._store.create_json(event.key, claim, durable=False):
            return Claim(owned=True)
        found = self.peek(event, now=now)
        if found is not None:
            return found

        def take_over(current: Any) -> Any:
            return claim if current is None or self._claimable(event, current, now) else current

        # The entry expired or its owner's lease lapsed: take it over, unless another
        # delivery did so first (then what it holds is the answer).
        held = self._store.update_json(event.key, take_over)
        if held.get("owner") == owner and held.get("state") == _CLAIMED:
            return Claim(owned=True)
        return self._judge(event, held, now) or Claim(owned=False, busy_until=now)

    def peek(self, event: EventRef, *, now: float) -> Claim | None:
        """The reply given to `event`, or the live claim on it; None when it may be claimed
        (nothing kept, or what is kept has expired)."""
        current = self._store.read_json(event.key, None)
        return None if current is None else self._judge(event, current, now)

    def renew(self, event: EventRef, *, owner: str, lease_seconds: float, now: float) -> bool:
        """Extend `owner`'s lease; False if another delivery took the event over meanwhile
        (the claim is made again if it vanished: its owner is still at work)."""
        lease_until = now + lease_seconds
        renewed = event.entry(state=_CLAIMED, owner=owner, lease_until=lease_until,
                              **{EXPIRES_AT: lease_until})

        def extend(current: Any) -> Any:
            return renewed if current is None or current.get("owner") == owner else current

        held = self._store.update_json(event.key, extend)
        return bool(held.get("owner") == owner)

    def answer(self, event: EventRef, reply: Reply, *, owner: str, ttl_seconds: float,
               now: float) -> bool:
        """Keep `reply` for redeliveries until now + ttl_seconds, in place of `owner`'s claim;
        False if another delivery's reply got there first (that one is kept)."""
        entry = event.entry(
            state=_ANSWERED, owner=owner, status=int(reply.status), headers=dict(reply.headers),
            body=base64.b64encode(reply.body).decode("ascii"), **{EXPIRES_AT: now + ttl_seconds},
        )

        def record(current: Any) -> Any:
            if current is None or current.get("owner") == owner:
                return entry
            return entry if self._claimable(event, current, now) else current

        held = self._store.update_json(event.key, record)
        return bool(held.get("owner") == owner)

    def release(self, event: EventRef, *, owner: str) -> bool:
        """Give up `owner`'s claim without a reply (the handler failed in a way worth
        retrying), so that the next delivery runs the handler."""
        return self._store.delete_json_if(
            event.key, lambda current: isinstance(current, dict)
            and current.get("owner") == owner and current.get("state") == _CLAIMED)

    def get(self, event: EventRef, *, now: float) -> Reply | None:
        """The reply kept for `event`, if any and not expired."""
        found = self.peek(event, now=now)
        return found.reply if found is not None else None

    def _claimable(self, event: EventRef, current: Any, now: float) -> bool:
        return self._judge(event, current, now) is None

    def _judge(self, event: EventRef, current: Any, now: float) -> Claim | None:
        try:
            if (current["service"], current["source"], current["id"]) != (
                    event.service, event.source, event.event_id):
                raise ValueError("it belongs to another event")  # a sha256 collision
            if float(current[EXPIRES_AT]) <= now:
                return None
            if current["state"] == _CLAIMED:
                return Claim(owned=False, busy_until=float(current["lease_until"]))
            return Claim(owned=False, reply=Reply(
                status=int(current["status"]),
                headers={str(k): str(v) for k, v in current["headers"].items()},
                body=base64.b64decode(current["body"]),
            ))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StoreError(
                f"the cached reply at {self._store.resolve(event.key)} is damaged ({error!r}); "
                "delete it and the event will be handled again"
            ) from error
