"""The reply cache's claims on file:// and on s3:// (moto): one owner at a time, leases
that lapse, answers that replace claims and expire."""

from __future__ import annotations

import pytest
from troupe.store import Claim, EventRef, Reply, Store, StoreError

EVENT = EventRef("ingest", "/tests", "event-1")
REPLY = Reply(200, {"ce-id": "r1"}, b"{}")


def test_one_owner_at_a_time_until_it_answers(store: Store) -> None:
    cache = store.replies
    assert cache.claim(EVENT, owner="a", lease_seconds=30, now=100.0) == Claim(owned=True)
    assert cache.claim(EVENT, owner="b", lease_seconds=30, now=101.0) == Claim(
        owned=False, busy_until=130.0)
    assert cache.renew(EVENT, owner="a", lease_seconds=30, now=120.0) is True
    assert cache.peek(EVENT, now=140.0) == Claim(owned=False, busy_until=150.0)
    assert cache.answer(EVENT, REPLY, owner="a", ttl_seconds=3600, now=121.0) is True
    assert cache.claim(EVENT, owner="b", lease_seconds=30, now=122.0) == Claim(
        owned=False, reply=REPLY)


def test_a_lapsed_lease_is_taken_over_and_the_old_owner_loses(store: Store) -> None:
    cache = store.replies
    assert cache.claim(EVENT, owner="a", lease_seconds=30, now=100.0).owned
    assert cache.claim(EVENT, owner="b", lease_seconds=30, now=131.0).owned  # a lapsed
    assert cache.renew(EVENT, owner="a", lease_seconds=30, now=132.0) is False
    # a finishes late: b's claim is kept, and b's answer is the one recorded.
    assert cache.answer(EVENT, Reply(202), owner="a", ttl_seconds=3600, now=133.0) is False
    assert cache.answer(EVENT, REPLY, owner="b", ttl_seconds=3600, now=134.0) is True
    assert cache.get(EVENT, now=135.0) == REPLY


def test_a_released_claim_lets_the_next_delivery_run(store: Store) -> None:
    cache = store.replies
    assert cache.claim(EVENT, owner="a", lease_seconds=30, now=100.0).owned
    assert cache.release(EVENT, owner="b") is False  # not b's to release
    assert cache.release(EVENT, owner="a") is True
    assert cache.peek(EVENT, now=101.0) is None
    assert cache.claim(EVENT, owner="b", lease_seconds=30, now=101.0).owned


def test_an_expired_answer_is_handled_again(store: Store) -> None:
    cache = store.replies
    assert cache.claim(EVENT, owner="a", lease_seconds=30, now=100.0).owned
    assert cache.answer(EVENT, REPLY, owner="a", ttl_seconds=60, now=101.0)
    assert cache.get(EVENT, now=160.0) == REPLY
    assert cache.get(EVENT, now=161.0) is None
    assert cache.claim(EVENT, owner="b", lease_seconds=30, now=161.0).owned


def test_a_damaged_entry_says_where_it_is(file_store: Store) -> None:
    file_store.write_json(EVENT.key, {"service": "ingest"})
    with pytest.raises(StoreError, match="delete it"):
        file_store.replies.claim(EVENT, owner="a", lease_seconds=30, now=100.0)
