"""`troupe.dev/priority` rules, and the activator queue's order and promotions."""

from __future__ import annotations

import json
import threading

import pytest
from troupe.local.serving.priority import (
    HIGH,
    LOW,
    NORMAL,
    PriorityRules,
    PrioritySyntaxError,
)
from troupe.local.serving.waiting import CHECK_INTERVAL, Waiter, WaitQueue

RULES = PriorityRules.parse("type=dev.troupe.training.requested:high, "
                            "source=urn:batch:nightly:low, type=dev.troupe.data.validated:low")


def test_rules_read_attribute_value_and_level() -> None:
    assert [(r.attribute, r.value, r.level) for r in RULES.rules] == [
        ("type", "dev.troupe.training.requested", HIGH),
        ("source", "urn:batch:nightly", LOW),  # the level follows the last colon
        ("type", "dev.troupe.data.validated", LOW)]


@pytest.mark.parametrize(("text", "hint"), [
    ("type=dev.troupe.training.requested", "ATTRIBUTE=VALUE:LEVEL"),
    ("type=dev.troupe.training.requested:urgent", "high, normal, low"),
    ("Type=x:high", "ATTRIBUTE=VALUE:LEVEL"),
    ("type=x:high,,type=y:low", "ATTRIBUTE=VALUE:LEVEL"),
])
def test_a_bad_rule_says_what_to_write(text: str, hint: str) -> None:
    with pytest.raises(PrioritySyntaxError, match=hint):
        PriorityRules.parse(text)


def test_binary_mode_reads_ce_headers_case_insensitively_and_percent_decoded() -> None:
    assert RULES.level_of([("Ce-Type", "dev.troupe.training.requested")], b"") == HIGH
    assert RULES.level_of([("ce-source", "urn%3Abatch%3Anightly")], b"") == LOW
    assert RULES.level_of([("ce-type", "dev.troupe.model.approved")], b"") == NORMAL
    assert RULES.level_of([], b"plain request") == NORMAL


def test_the_first_matching_rule_wins() -> None:
    headers = [("ce-type", "dev.troupe.training.requested"), ("ce-source", "urn:batch:nightly")]
    assert RULES.level_of(headers, b"") == HIGH


def test_structured_mode_reads_the_envelope() -> None:
    envelope = json.dumps({"specversion": "1.0", "id": "1", "source": "/x",
                           "type": "dev.troupe.data.validated"}).encode()
    headers = [("Content-Type", "application/cloudevents+json; charset=utf-8")]
    assert RULES.level_of(headers, envelope) == LOW
    assert RULES.level_of(headers, b"{not json") == NORMAL


def test_no_rules_is_normal_for_everything() -> None:
    assert PriorityRules().level_of([("ce-type", "dev.troupe.training.requested")], b"") \
        == NORMAL


def _queue() -> tuple[WaitQueue, threading.RLock]:
    lock = threading.RLock()
    return WaitQueue(lock), lock


def _served(queue: WaitQueue, lock: threading.RLock) -> list[Waiter]:
    """Hand out slots until nobody waits; the waiters in the order they were served."""
    served = []
    with lock:  # handing out notifies the waiter's condition, which needs the lock
        while (waiter := queue.hand(None, 0.0)) is not None:  # type: ignore[arg-type]
            served.append(waiter)
    return served


def test_waiters_are_served_by_level_then_arrival() -> None:
    queue, lock = _queue()
    waiters = [queue.join(level, now=0.0) for level in (LOW, NORMAL, HIGH, LOW, HIGH, NORMAL)]
    order = [waiters.index(w) for w in _served(queue, lock)]
    assert order == [2, 4, 1, 5, 0, 3]


def test_a_request_is_promoted_when_its_predicted_wait_reaches_the_bound() -> None:
    queue, lock = _queue()
    low = queue.join(LOW, now=0.0)
    # Bound 2 s, service 0.5 s on one slot, nobody at the top: promoted, it would still
    # wait one service time, so it is due at 2 - 0.5 - one check interval = 1.4 s.
    assert queue.promote(1.3, 2.0, 0.5, 1) == 0 and not low.promoted
    assert queue.promote(2.0 - 0.5 - CHECK_INTERVAL, 2.0, 0.5, 1) == 1
    assert low.promoted and queue.promotions == 1
    later = queue.join(HIGH, now=1.5)  # a high request after the promotion goes behind it
    assert _served(queue, lock) == [low, later]


def test_high_requests_already_waiting_keep_their_place() -> None:
    queue, lock = _queue()
    first, second = queue.join(HIGH, now=0.0), queue.join(HIGH, now=0.0)
    low = queue.join(LOW, now=0.0)
    # Promoted, it would wait for both highs and then its own turn: 3 x 0.5 s on one slot.
    assert queue.promote(0.3, 2.0, 0.5, 1) == 0
    assert queue.promote(0.4, 2.0, 0.5, 1) == 1
    third = queue.join(HIGH, now=0.5)
    assert _served(queue, lock) == [first, second, low, third]


def test_more_slots_leave_less_to_wait() -> None:
    queue, _ = _queue()
    queue.join(HIGH, now=0.0)
    queue.join(HIGH, now=0.0)
    low = queue.join(LOW, now=0.0)
    # Two slots: 3 x 0.5 / 2 = 0.75 s still to wait once promoted, so due at 1.15 s.
    assert queue.promote(1.0, 2.0, 0.5, 2) == 0
    assert queue.promote(1.2, 2.0, 0.5, 2) == 1 and low.promoted


def test_without_a_service_time_only_the_wait_itself_counts() -> None:
    queue, _ = _queue()
    normal = queue.join(NORMAL, now=0.0)
    assert queue.promote(1.8, 2.0, None, 1) == 0
    assert queue.promote(1.9, 2.0, None, 1) == 1 and normal.promoted
