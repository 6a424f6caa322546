"""At-least-once delivery made harmless: a redelivered (source, id) gets the same answer.

Final answers (200, 202, 422) are kept in the store's reply cache, so they survive a
restart and are shared by every replica. Retryable answers (5xx) are not kept: the next
delivery must run the handler again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from troupe.store import Reply, Store

from .responses import DUPLICATE, Answer

FINAL_STATUSES: Final = frozenset({200, 202, 422})
_STRIPES: Final = 64


class ReplyLedger:
    """The reply cache of one service, plus in-process locks so that two concurrent
    deliveries of the same event in one process run the handler once."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._locks = [threading.Lock() for _ in range(_STRIPES)]

    @contextmanager
    def exclusive(self, source: str, event_id: str) -> Iterator[None]:
        with self._locks[hash((source, event_id)) % _STRIPES]:
            yield

    def recall(self, store: Store, source: str, event_id: str) -> Answer | None:
        reply = store.replies.get(self._service, source, event_id)
        if reply is None:
            return None
        return Answer(reply.status, dict(reply.headers), reply.body, DUPLICATE)

    def remember(self, store: Store, source: str, event_id: str, answer: Answer) -> bool:
        """Keep a final answer; returns whether it was kept."""
        if answer.status not in FINAL_STATUSES:
            return False
        reply = Reply(status=answer.status, headers=dict(answer.headers), body=answer.body)
        store.replies.put(self._service, source, event_id, reply)
        return True
