"""Every span the runtime collected, from its own parts and from the functions it runs.

Kept in memory, indexed by trace and by run, for the dashboard; appended to a file of its
own (`troupe.traces.TRACE_FILE`), one JSON record a line, for `troupe timeline` and for the
next run. Memory holds the newest traces up to a bound; the file is rotated past a size.

The data plane's spans come as compact entries (troupe.traces.compact), thousands a second:
each batch is written as it comes, but indexed only when something reads (the dashboard,
which reads as runs move), and its entries are made into span records only when a trace
they belong to is read, once (the trace keeps the records). Listeners hear which runs and
traces each batch touched.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO

from troupe.traces import SpanRecord, read_span_file
from troupe.traces.compact import Entry, runid_of_entry, spans_of_entry, trace_of_entry

log = logging.getLogger(__name__)
# One encoder for every line: json.dumps with separators builds a new one per call.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"))
DEFAULT_KEEP: Final = 200_000  # spans in memory; a demo run leaves a few hundred
ROTATE_BYTES: Final = 64 * 1024 * 1024

# Told of each batch added: the runs (runids) and traces it touched.
_Trace = tuple["SpanRecord | Entry", ...] | list["SpanRecord | Entry"]
_TUPLE_ITEMS: Final = 32
SpansAdded = Callable[[set[str], set[str]], None]


@dataclass(frozen=True)
class RunSummary:
    """What the spans say about one run: when it went, its traces, and whether any failed."""

    runid: str
    first_ns: int
    last_ns: int
    spans: int
    traces: tuple[str, ...]
    errors: int

    def to_json(self) -> dict[str, Any]:
        return {"runid": self.runid, "first_ns": self.first_ns, "last_ns": self.last_ns,
                "spans": self.spans, "traces": list(self.traces), "errors": self.errors}


class SpanStore:
    def __init__(self, path: Path | None = None, *, keep: int = DEFAULT_KEEP) -> None:
        self.path = path
        self._keep = keep
        self._lock = threading.Lock()
        # Oldest first; a trace holds records, and entries not yet made into records. A
        # tuple, as entries are: the garbage collector stops tracking a tuple of strings and
        # numbers, so that hundreds of thousands kept do not make every collection longer.
        # A trace past _TUPLE_ITEMS (one batch traced as one trace) becomes a list, so that
        # adding to it stays cheap.
        self._traces: OrderedDict[str, _Trace] = OrderedDict()
        self._count = 0
        # Batches of entries not indexed yet, and how many entries they hold.
        self._unindexed: deque[Sequence[Entry]] = deque()
        self._unindexed_count = 0
        self._runs: dict[str, set[str]] = {}  # runid -> trace ids
        self._listeners: list[SpansAdded] = []
        self._file: TextIO | None = None

    def open(self) -> SpanStore:
        """Read what earlier runs kept, then append to the file from here on."""
        if self.path is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._index(list(read_span_file(self.path)))
        self._file = self.path.open("a", encoding="utf-8")
        return self

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def subscribe(self, listener: SpansAdded) -> None:
        """`listener` is called with each batch of spans added from now on."""
        with self._lock:
            self._listeners.append(listener)

    def add(self, spans: Sequence[SpanRecord]) -> None:
        if not spans:
            return
        self._index(spans)
        with self._lock:
            self._write(_ENCODER.encode(span.to_json()) for span in spans)
        self._tell({span.runid for span in spans if span.runid},
                   {span.trace_id for span in spans})

    def add_entries(self, entries: Sequence[Entry]) -> None:
        """The data plane's compact entries (troupe.traces.compact), JSON-ready."""
        if not entries:
            return
        with self._lock:
            # One line for the batch: one call to the encoder, not one per entry.
            self._write((_ENCODER.encode(list(entries)),))
            self._unindexed.append(entries)
            self._unindexed_count += len(entries)
            while self._unindexed_count > self._keep and len(self._unindexed) > 1:
                # Nobody read them in time: the file keeps them, memory keeps the newest.
                self._unindexed_count -= len(self._unindexed.popleft())
            listening = bool(self._listeners)
        if listening:
            runids = {runid for entry in entries if (runid := runid_of_entry(entry))}
            self._tell(runids, {trace_of_entry(entry) for entry in entries})

    def _tell(self, runids: set[str], traces: set[str]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(runids, traces)
            except Exception:  # a listener's bug must not lose the spans for the others
                log.exception("a span listener failed")

    # reading -----------------------------------------------------------------------------
    def trace(self, trace_id: str) -> list[SpanRecord]:
        with self._lock:
            self._index_entries()
            return self._records(trace_id)

    def run(self, runid: str) -> list[SpanRecord]:
        """Every span of every trace that touched `runid`, in the order they started."""
        with self._lock:
            self._index_entries()
            traces = self._runs.get(runid, set())
            spans = [span for trace in traces for span in self._records(trace)]
        return sorted(spans, key=lambda span: (span.start_ns, span.end_ns))

    def runs(self) -> list[RunSummary]:
        """The runs the spans name, newest first."""
        with self._lock:
            self._index_entries()
            found = []
            for runid, traces in self._runs.items():
                spans = [span for trace in traces for span in self._records(trace)]
                if spans:
                    found.append(RunSummary(
                        runid, min(s.start_ns for s in spans), max(s.end_ns for s in spans),
                        len(spans), tuple(sorted(traces)), sum(1 for s in spans if s.error)))
        return sorted(found, key=lambda run: run.first_ns, reverse=True)

    # internals ---------------------------------------------------------------------------
    def _index(self, spans: Iterable[SpanRecord]) -> None:
        with self._lock:
            for span in spans:
                self._add_to_trace(span.trace_id, span, span.runid)
            self._trim()

    def _add_to_trace(self, trace_id: str, item: SpanRecord | Entry, runid: str | None) -> None:
        trace = self._traces.get(trace_id)
        if trace is None:
            self._traces[trace_id] = (item,)
        elif isinstance(trace, list):
            trace.append(item)
        elif len(trace) < _TUPLE_ITEMS:
            self._traces[trace_id] = (*trace, item)
        else:
            self._traces[trace_id] = [*trace, item]
        self._count += 1  # an entry counts as one: the bound is on what memory holds
        if runid is not None:
            self._runs.setdefault(runid, set()).add(trace_id)

    def _index_entries(self) -> None:
        """Index the batches of entries added since the last read (under the lock)."""
        while self._unindexed:
            for entry in self._unindexed.popleft():
                self._add_to_trace(trace_of_entry(entry), entry, runid_of_entry(entry))
        self._unindexed_count = 0
        self._trim()

    def _trim(self) -> None:
        while self._count > self._keep and len(self._traces) > 1:
            _, dropped = self._traces.popitem(last=False)
            self._count -= len(dropped)

    def _records(self, trace_id: str) -> list[SpanRecord]:
        """A trace's span records, its entries made into records once (under the lock)."""
        items = self._traces.get(trace_id)
        if items is None:
            return []
        if all(isinstance(item, SpanRecord) for item in items):
            return list(items)  # type: ignore[arg-type]  # all records, as just checked
        records: list[SpanRecord] = []
        for item in items:
            if isinstance(item, SpanRecord):
                records.append(item)
            else:
                records.extend(spans_of_entry(item))
        self._count += len(records) - len(items)
        self._traces[trace_id] = tuple(records)
        return records

    def _write(self, lines: Iterable[str]) -> None:
        if self._file is None or self.path is None:
            return
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()
        if self._file.tell() > ROTATE_BYTES:
            self._file.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = self.path.open("a", encoding="utf-8")
