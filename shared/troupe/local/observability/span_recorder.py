"""The spans of the runtime's own parts (the data plane, the activator), recorded cheaply.

The OpenTelemetry SDK costs ~35 µs of CPU per span (measured here), and the data plane
makes three spans per event: a quarter of its throughput. These spans never leave the
runtime, so they are kept as OpenTelemetry's data model says (W3C ids, parents, semantic
attribute names) without its objects: recording one appends a tuple to a deque (safe from
any thread), and a thread of its own turns them into span records for the store several
times a second. `defer` goes further for the data plane's hot path: the tuple holds what
the caller saw, and that thread makes the compact entries (troupe.traces.compact) of it,
which the store keeps as they are until someone reads them.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from troupe.local.observability.span_store import SpanStore
from troupe.traces import SpanRecord
from troupe.traces.records import AttributeValue

log = logging.getLogger(__name__)
FLUSH_INTERVAL_S: Final = 0.2
_Finished = tuple[str, str, str, str | None, int, int, Mapping[str, AttributeValue], str | None]
# (make, fields): make(service, *fields) is the compact entry, in the recorder's thread.
_Deferred = tuple[Any, tuple[Any, ...]]


def new_span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


class SpanRecorder:
    def __init__(self, store: SpanStore, service: str,
                 interval: float = FLUSH_INTERVAL_S) -> None:
        self.service = service
        self._store = store
        self._interval = interval
        self._finished: deque[_Finished] = deque()
        self._deferred: deque[_Deferred] = deque()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._flush_forever, name=f"spans-{service}",
                                        daemon=True)

    def start(self) -> SpanRecorder:
        self._thread.start()
        return self

    def record(self, name: str, trace_id: str, span_id: str, parent_id: str | None,
               start_ns: int, end_ns: int, attributes: Mapping[str, AttributeValue],
               error: str | None = None) -> None:
        """A finished span, from any thread."""
        self._finished.append((name, trace_id, span_id, parent_id, start_ns, end_ns,
                               attributes, error))

    def defer(self, make: Any, *fields: Any) -> None:
        """The compact entry that `make(service, *fields)` returns, made in this recorder's
        thread; from any thread, at the cost of one tuple and one append."""
        self._deferred.append((make, fields))

    def flush(self) -> None:
        service = self.service
        finished = [self._finished.popleft() for _ in range(len(self._finished))]
        self._store.add([SpanRecord(trace_id, span_id, parent_id, name, service, start, end,
                                    error, attributes)
                         for name, trace_id, span_id, parent_id, start, end, attributes, error
                         in finished])
        deferred = [self._deferred.popleft() for _ in range(len(self._deferred))]
        entries = []
        for make, fields in deferred:
            try:
                entries.append(make(service, *fields))
            except Exception:  # one bad entry must not stop the recorder, nor lose the rest
                log.exception("a span entry could not be made")
        self._store.add_entries(entries)

    def close(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.flush()

    def _flush_forever(self) -> None:
        while not self._stopping.wait(self._interval):
            self.flush()

