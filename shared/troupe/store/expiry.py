"""Entries kept for a while, and swept away by the processes that use them.

Some facts matter only for a time: that an event was answered (its redelivery gets the
same reply), that a feedback id was counted (a second label is refused). Kept forever,
they grow without bound. Each such entry records `expires_at`, in Unix seconds, and lives
under a folder sharded by the first two hex digits of a sha256 (`<folder>/ab/<sha256>.json`).

A `Compactor` deletes expired entries a few shards at a time, within a small time budget,
whenever the process that writes them has not swept for a while. There is no separate job
to deploy, schedule or forget, and no process holds the sweep up: it runs beside the work.
Each deletion is a compare-and-delete (`Store.delete_json_if`), so an entry renewed or
taken over between the look and the delete is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from .errors import StoreError

if TYPE_CHECKING:
    from .store import Store

EXPIRES_AT: Final = "expires_at"
SHARDS: Final = tuple(f"{index:02x}" for index in range(256))
# A sweep stops after this long, and goes on from where it stopped the next time: a large
# folder on S3 (one listing per shard, one read per entry) is swept over several turns.
DEFAULT_SWEEP_BUDGET_SECONDS: Final = 0.05

_log = logging.getLogger("troupe.store")


def entry_key(folder: str, *parts: str) -> str:
    """The key of the entry named by `parts` (any text: sources, ids, versions), of fixed
    length and safe whatever they hold; parts are JSON-encoded as a list, so no two
    different lists of parts name one entry by the way they are joined."""
    digest = hashlib.sha256(json.dumps(parts).encode("ascii")).hexdigest()
    return f"{folder}/{digest[:2]}/{digest}.json"


def is_expired(entry: Any, now: float) -> bool:
    """Whether `entry` may be deleted at `now`. An entry without `expires_at` was written
    before entries expired, and is expired; one that is not an object, or whose
    `expires_at` is not a number, is not ours to judge and is kept."""
    if not isinstance(entry, dict):
        return False
    expires_at = entry.get(EXPIRES_AT)
    if expires_at is None:
        return True
    try:
        return float(expires_at) <= now
    except (TypeError, ValueError):
        return False


def sweep_interval(ttl_seconds: float) -> float:
    """How often a process sweeps entries that live `ttl_seconds`: often enough that, even
    one shard per sweep, every shard is visited four times in a lifetime (every ~10 min for
    a 7-day lifetime), and entries outlive their time by at most a quarter of it."""
    return ttl_seconds / (len(SHARDS) * 4)


class Compactor:
    """Deletes the expired entries of one folder, shard by shard, beside the work."""

    def __init__(
        self,
        store: Store,
        folder: str,
        *,
        every_seconds: float,
        budget_seconds: float = DEFAULT_SWEEP_BUDGET_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._folder = folder
        self._every = every_seconds
        self._budget = budget_seconds
        self._clock = clock
        # Processes start at different shards, so that together they cover the folder
        # sooner than one would.
        self._next = random.randrange(len(SHARDS))
        self._last_sweep = -math.inf
        self._sweeping = threading.Lock()

    def sweep_if_due(self) -> bool:
        """Start a sweep on a background thread unless one ran less than `every_seconds`
        ago or is running; returns whether one was started."""
        started = time.monotonic()
        if started - self._last_sweep < self._every or not self._sweeping.acquire(blocking=False):
            return False
        self._last_sweep = started
        thread = threading.Thread(target=self._sweep_in_background, daemon=True,
                                  name=f"compact-{self._folder}")
        thread.start()
        return True

    def _sweep_in_background(self) -> None:
        try:
            self._sweep()
        except Exception:  # a store that fails now will be swept at the next turn
            _log.exception("could not compact %s in %s", self._folder, self._store)
        finally:
            self._sweeping.release()

    def sweep(self, *, budget_seconds: float | None = None) -> int:
        """Sweep now, on this thread (waiting for a background sweep to finish first);
        returns how many entries were deleted."""
        with self._sweeping:
            return self._sweep(budget_seconds)

    def _sweep(self, budget_seconds: float | None = None) -> int:
        budget = self._budget if budget_seconds is None else budget_seconds
        deadline = time.monotonic() + budget
        deleted = 0
        for _ in SHARDS:  # at least one shard, at most every shard once
            shard = SHARDS[self._next]
            self._next = (self._next + 1) % len(SHARDS)
            deleted += self._sweep_shard(shard)
            if time.monotonic() >= deadline:
                break
        return deleted

    def _sweep_shard(self, shard: str) -> int:
        now = self._clock()
        deleted = 0
        for key in self._store.list(f"{self._folder}/{shard}"):
            try:
                deleted += self._store.delete_json_if(key, lambda entry: is_expired(entry, now))
            except StoreError as error:  # a damaged entry says so where it is read
                _log.warning("kept %s while compacting: %s", key, error)
        return deleted
