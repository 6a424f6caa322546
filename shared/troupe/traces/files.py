"""The span file the local runtime keeps: one JSON span record a line, appended as spans
come, so that `troupe timeline` reads a run's trace whether the runtime is up or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from .records import SpanRecord

# Under the project's .troupe/ folder.
TRACE_FILE: Final = Path("traces") / "spans.jsonl"


def read_span_file(path: Path) -> Iterator[SpanRecord]:
    """The records in `path`, oldest first; a line that is not one (the last line, while
    it is being written) is skipped. Nothing when the file does not exist."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            try:
                yield SpanRecord.from_json(json.loads(line))
            except (ValueError, KeyError, TypeError):
                continue
