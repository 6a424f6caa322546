"""At-least-once delivery made harmless: an event is handled once, whichever instance gets it.

A delivery claims its event in the store's reply cache before the handler runs (see
troupe.store.replies). A concurrent delivery of the same (source, id), in this process or
another instance, waits up to `reply_wait_seconds` for the answer and gives it too, or
answers 503 with Retry-After so that the broker brings it back. Final answers (200, 202,
422) are kept for `reply_ttl_seconds`; retryable ones (5xx) release the claim, so the next
delivery runs the handler again. While the handler runs, one thread per process renews
the leases of the deliveries under way, so a long handler keeps its claim and a crashed
one loses it after `reply_lease_seconds`. Expired entries are swept as deliveries come.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from troupe.store import REPLIES_FOLDER, Compactor, EventRef, Reply, Store, sweep_interval

from .errors import TemporaryError
from .responses import DUPLICATE, Answer
from .settings import Settings

FINAL_STATUSES: Final = frozenset({200, 202, 422})
# How often a waiting delivery looks at the store again: soon at first, then less often.
_FIRST_LOOK_SECONDS: Final = 0.01
_LAST_LOOK_SECONDS: Final = 0.25

_log = logging.getLogger("troupe.function")


class DeliveryInProgressError(TemporaryError):
    """Another delivery of the same event holds it and did not answer in time (503)."""

    kind = "in-progress"

    def __init__(self, event: EventRef, waited: float) -> None:
        super().__init__(
            f"event {event.event_id!r} from {event.source!r} is being handled by another "
            f"delivery, which did not answer within {waited:g} s (TROUPE_REPLY_WAIT_SECONDS); "
            "deliver it again later and it gets the same answer",
            delay=max(waited, 1.0),
        )


class ReplyLedger:
    """The reply cache of one service, as its deliveries use it."""

    def __init__(self, settings: Settings, store: Callable[[], Store]) -> None:
        settings.require_at_least("reply_ttl_seconds", 1)
        settings.require_at_least("reply_lease_seconds", 1)
        settings.require_at_least("reply_wait_seconds", 0)
        self._service = settings.service
        self._ttl = settings.reply_ttl_seconds
        self._lease = settings.reply_lease_seconds
        self._wait = settings.reply_wait_seconds
        self._store = store
        self._leases = _LeaseKeeper(self._renew, every=self._lease / 3)
        self._compactor: Compactor | None = None
        self._compactor_lock = threading.Lock()

    def deliver_once(self, source: str, event_id: str, handle: Callable[[], Answer]) -> Answer:
        """The answer to the event (source, event_id): from `handle()`, run only if no other
        delivery answered or is answering it, or the answer already given."""
        event = EventRef(self._service, source, event_id)
        owner = uuid.uuid4().hex
        replies = self._store().replies
        started = time.monotonic()
        look_again = _FIRST_LOOK_SECONDS
        claim = replies.claim(event, owner=owner, lease_seconds=self._lease, now=time.time())
        while not claim.owned:
            if claim.reply is not None:
                reply = claim.reply
                return Answer(reply.status, dict(reply.headers), reply.body, DUPLICATE)
            left = self._wait - (time.monotonic() - started)
            if left <= 0:
                raise DeliveryInProgressError(event, self._wait)
            time.sleep(min(look_again, left))  # the other delivery's progress, polled
            look_again = min(look_again * 2, _LAST_LOOK_SECONDS)
            now = time.time()
            claim = replies.peek(event, now=now) or replies.claim(
                event, owner=owner, lease_seconds=self._lease, now=now)
        with self._leases.held(event, owner):
            answer = handle()
        self._settle(event, owner, answer)
        self._compactor_for(self._store()).sweep_if_due()
        return answer

    def _settle(self, event: EventRef, owner: str, answer: Answer) -> None:
        replies = self._store().replies
        try:
            if answer.status in FINAL_STATUSES:
                reply = Reply(status=answer.status, headers=dict(answer.headers),
                              body=answer.body)
                replies.answer(event, reply, owner=owner, ttl_seconds=self._ttl, now=time.time())
            else:
                replies.release(event, owner=owner)
        except Exception:
            # The handler's work is done; answering is right. A kept claim lapses with its
            # lease, and a redelivery then runs the handler again, which idempotent
            # handlers tolerate.
            _log.exception("could not keep the answer to %s from %s in the reply cache",
                           event.event_id, event.source)

    def _renew(self, event: EventRef, owner: str) -> bool:
        return self._store().replies.renew(event, owner=owner, lease_seconds=self._lease,
                                           now=time.time())

    def _compactor_for(self, store: Store) -> Compactor:
        if self._compactor is None:
            with self._compactor_lock:
                if self._compactor is None:
                    self._compactor = Compactor(store, REPLIES_FOLDER,
                                                every_seconds=sweep_interval(self._ttl))
        return self._compactor


class _LeaseKeeper:
    """One thread per process that renews the leases of the deliveries under way."""

    def __init__(self, renew: Callable[[EventRef, str], bool], every: float) -> None:
        self._renew = renew
        self._every = every
        self._held: dict[str, EventRef] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def held(self, event: EventRef, owner: str) -> Iterator[None]:
        with self._lock:
            self._held[owner] = event
            if self._thread is None or not self._thread.is_alive():
                # Started on first use, so a process forked after the app was built (gunicorn)
                # runs its own.
                self._thread = threading.Thread(target=self._keep, daemon=True,
                                                name="reply-leases")
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.pop(owner, None)

    def _keep(self) -> None:
        while True:
            time.sleep(self._every)
            with self._lock:
                held = list(self._held.items())
            for owner, event in held:
                try:
                    if not self._renew(event, owner):
                        with self._lock:
                            self._held.pop(owner, None)
                        _log.warning("the delivery of %s from %s outlived its lease and another "
                                     "took the event over", event.event_id, event.source)
                except Exception:
                    _log.exception("could not renew the lease on %s from %s",
                                   event.event_id, event.source)
