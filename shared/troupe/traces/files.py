"""The span file the local runtime keeps: one JSON span record a line, appended as spans
come, so that `troupe timeline` reads a run's trace whether the runtime is up or not."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Final

from .compact import spans_of_entry
from .records import SpanRecord

# Under the project's .troupe/ folder.
TRACE_FILE: Final = Path("traces") / "spans.jsonl"


def read_span_file(path: Path) -> Iterator[SpanRecord]:
    """The records in `path`, oldest first, the data plane's compact entries (a line holds
    a JSON array of them, compact.py) made into the records they stand for; a line that is
    neither (the last line, while it is being written) is skipped. Nothing when the file
    does not exist."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                value = json.loads(line)
                if isinstance(value, list):  # a batch of compact entries
                    for entry in value:
                        yield from spans_of_entry(entry)
                else:
                    yield SpanRecord.from_json(value)
            except (ValueError, KeyError, TypeError):
                continue


def read_run_spans(path: Path, runids: Collection[str]) -> list[SpanRecord]:
    """Every span of every trace in `path` that touched one of `runids`, oldest first:
    the runtime's own spans carry no runid, but share their trace with spans that do."""
    by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
    wanted: set[str] = set()
    for span in read_span_file(path):
        by_trace[span.trace_id].append(span)
        if span.runid in runids:
            wanted.add(span.trace_id)
    spans = [span for trace in wanted for span in by_trace[trace]]
    return sorted(spans, key=lambda span: (span.start_ns, span.end_ns))
