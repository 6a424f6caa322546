"""The span store keeps the data plane's compact entries as they come, and gives them back
as span records, from memory and from its file alike; listeners hear which runs moved."""

from __future__ import annotations

from pathlib import Path

from troupe.local.observability.span_store import SpanStore
from troupe.traces import ATTEMPT, EVENT_ID, RUNID, STATUS_CODE, Role, SpanRecord, read_span_file
from troupe.traces.compact import DEAD_LETTER, DELIVERY, INGRESS

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INGRESS_SPAN = "00f067aa0ba902b7"
ARRIVED = "2026-01-01T00:00:00+00:00"  # the broker's knativearrivaltime
T = 1_767_225_600 * 10**9  # the same, in Unix nanoseconds


def entries() -> list[list[object]]:
    return [
        [INGRESS, "troupe-broker", TRACE, INGRESS_SPAN, None, T + 100, T + 110, "default",
         "t.x", "e1", "run-1", None],
        [DELIVERY, "troupe-broker", TRACE, INGRESS_SPAN, "1111111111111111", 1, T + 150,
         T + 160, 503, None, "trig", "svc", "t.x", "e1", ARRIVED],
        [DELIVERY, "troupe-broker", TRACE, INGRESS_SPAN, "3333333333333333", 2, T + 170,
         T + 180, 202, None, "trig", "svc", "t.x", "e1", None],
        [DEAD_LETTER, "troupe-broker", "f" * 32, "a" * 16, "b" * 16, 1, 2, None,
         "refused", "trig", "e2"],
    ]


def test_entries_read_back_as_records_from_memory_and_from_the_file(tmp_path: Path) -> None:
    store = SpanStore(tmp_path / "spans.jsonl").open()
    heard: list[tuple[set[str], set[str]]] = []
    store.subscribe(lambda runids, traces: heard.append((runids, traces)))
    handler = SpanRecord(TRACE, "4444444444444444", "1111111111111111", "handle", "svc", T + 155,
                         T + 158, None, {RUNID: "run-1", "troupe.span": Role.HANDLER.value})
    store.add([handler])
    store.add_entries(entries())
    store.close()

    spans = store.run("run-1")
    assert [(span.role, span.start_ns) for span in spans] == [
        (Role.QUEUE, T), (Role.INGRESS, T + 100), (Role.DELIVERY, T + 150),
        (Role.HANDLER, T + 155), (Role.DELIVERY, T + 170)]
    queue, ingress, first, _, second = spans
    assert queue.end_ns == first.start_ns and queue.parent_id == INGRESS_SPAN
    assert len({span.span_id for span in spans}) == 5  # the wait's id is its own
    assert ingress.runid == "run-1" and ingress.parent_id is None
    assert (first.attributes[ATTEMPT], first.attributes[STATUS_CODE], first.error) == (
        1, 503, "HTTP 503")
    assert (second.attributes[ATTEMPT], second.error) == (2, None)
    (dead,) = store.trace("f" * 32)
    assert (dead.role, dead.error, dead.attributes[EVENT_ID]) == (Role.DEAD_LETTER, "refused",
                                                                 "e2")
    assert STATUS_CODE not in dead.attributes
    assert store.run("run-1") == spans  # made into records once, the same the second time
    assert heard == [({"run-1"}, {TRACE}), ({"run-1"}, {TRACE, "f" * 32})]

    # The file: a record a line, and one line for the batch of entries.
    assert len((tmp_path / "spans.jsonl").read_text().splitlines()) == 2
    from_file = sorted((s for s in read_span_file(tmp_path / "spans.jsonl")
                        if s.trace_id == TRACE), key=lambda span: span.start_ns)
    assert from_file == spans
    reopened = SpanStore(tmp_path / "spans.jsonl").open()
    assert reopened.run("run-1") == spans
    reopened.close()


def test_a_torn_batch_is_skipped_and_the_lines_around_it_are_read(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    store = SpanStore(path).open()
    store.add_entries(entries()[:1])
    store.close()
    whole = path.read_text()
    path.write_text(whole + whole[:40] + "\n" + '[["not-a-kind", 1]]\n' + whole)
    assert [span.span_id for span in read_span_file(path)] == [INGRESS_SPAN, INGRESS_SPAN]
