"""Which offset of a partition may be committed: the first one not yet finished.

Events of a partition finish out of order when delivery is unordered. Committing an offset
says "everything before it is done", so the commit position only moves past an event once
it, and every event before it, was delivered, dead-lettered or filtered out.

One thread at a time hands records over (`seen`; the reader's hand-over lock sees to it),
while deliveries finish on others (`finish`). Only `seen` adds to the pending offsets, so
with none pending it can move on without the lock: nothing can add one meanwhile.
"""

from __future__ import annotations

import threading
from collections import deque


class PartitionProgress:
    def __init__(self, start: int) -> None:
        self._lock = threading.Lock()
        self._pending: deque[int] = deque()  # offsets seen and not finished, ascending
        self._finished: set[int] = set()  # finished offsets still behind an unfinished one
        self._next = start  # the next offset the poll loop will see
        self.committed = start

    def seen(self, offset: int, *, finished: bool = False) -> None:
        """Called by the poll loop in offset order."""
        if finished and not self._pending:  # filtered out, nothing before it unfinished
            self._next = offset + 1
            return
        with self._lock:
            self._next = offset + 1
            if not finished or self._pending:
                self._pending.append(offset)
                if finished:
                    self._finished.add(offset)

    def finish(self, offset: int) -> None:
        with self._lock:
            self._finished.add(offset)
            while self._pending and self._pending[0] in self._finished:
                self._finished.discard(self._pending.popleft())

    def commit_position(self) -> int:
        """The offset to commit: the oldest unfinished one, or the next to be seen."""
        with self._lock:
            return self._pending[0] if self._pending else self._next

    @property
    def next_offset(self) -> int:
        """The next offset this partition's reader must hand over."""
        return self._next  # one int, written by the thread handing records over

    @property
    def unfinished(self) -> int:
        with self._lock:
            return len(self._pending) - len(self._finished)
