"""The span file as `troupe timeline` reads it: a run's traces whole, a torn line skipped."""

from __future__ import annotations

import json
from pathlib import Path

from troupe.traces import ROLE, RUNID, Role, SpanRecord, read_run_spans, read_span_file


def record(trace: str, span: str, start: int, **attributes: str) -> SpanRecord:
    return SpanRecord(trace * 32, span * 16, None, "x", "svc", start, start + 1, None,
                      attributes)


def test_a_run_comes_with_the_runtime_spans_of_its_traces_and_nothing_else(
    tmp_path: Path,
) -> None:
    path = tmp_path / "spans.jsonl"
    spans = [record("a", "2", 20, **{RUNID: "run-1", ROLE: Role.HANDLER.value}),
             record("a", "1", 10, **{ROLE: Role.INGRESS.value}),  # no runid: the broker's
             record("b", "3", 30, **{RUNID: "run-2"}),
             record("c", "4", 40)]
    lines = [json.dumps(span.to_json()) for span in spans]
    path.write_text("\n".join(lines) + '\n{"trace_id": "torn')

    assert [span.span_id for span in read_run_spans(path, {"run-1"})] == ["1" * 16, "2" * 16]
    assert [span.trace_id for span in read_run_spans(path, {"run-2"})] == ["b" * 32]
    assert read_run_spans(path, {"run-3"}) == []
    assert list(read_span_file(path)) == spans
    assert list(read_span_file(tmp_path / "absent.jsonl")) == []
