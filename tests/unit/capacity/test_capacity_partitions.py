"""The Kafka partitions a Trigger needs: worked by hand, and against the pooled queue."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from troupe.capacity import (
    TriggerMeasurements,
    UnreachableSLOError,
    WaitSLO,
    Workload,
    meets,
    ordered_partitions,
    plan_trigger,
    servers_for_slo,
    unordered_partitions,
)

SLO = WaitSLO.parse("200ms@p95")
ORDERED = TriggerMeasurements(
    trigger="trainer-on-validated", namespace="troupe", broker="default", subscriber="trainer",
    ordered=True, delivery_rate=6.0, peak_delivery_rate=10.0, delivery_time=0.1,
    delivery_scv=1.0)


def test_ordered_partitions_by_hand() -> None:
    # Each of n partitions is M/M/1 at 10/n events/s of 0.1 s: P(W > t) = rho e^-(mu-lambda)t.
    # At t = 0.2 s: n=4 gives 0.25 e^-1.5 = 0.056 > 0.05; n=5 gives 0.2 e^-1.6 = 0.040.
    assert ordered_partitions(Workload(10, 0.1), SLO) == 5


def test_constant_deliveries_need_fewer_ordered_partitions() -> None:
    # Allen-Cunneen halves the decay's time constant for SCV 0: n=2 gives 0.5 e^-2 = 0.068,
    # n=3 gives (1/3) e^-(20/3 * 0.2 * 2) = 0.023.
    assert ordered_partitions(Workload(10, 0.1, service_scv=0.0), SLO) == 3


def test_unordered_partitions_follow_littles_law() -> None:
    assert unordered_partitions(0.0) == 1
    assert unordered_partitions(0.4) == 1
    assert unordered_partitions(500.0) == 1
    assert unordered_partitions(1200.0) == 3  # 500 deliveries in flight per consumer
    assert unordered_partitions(12.0, max_poll_records=5) == 3


@given(rate=st.floats(0.1, 50), delivery=st.floats(0.005, 0.5), scv=st.floats(0, 4))
def test_separate_partitions_never_beat_one_pooled_queue(rate: float, delivery: float,
                                                        scv: float) -> None:
    workload = Workload(rate, delivery, service_scv=scv)
    partitions = ordered_partitions(workload, SLO)
    assert partitions >= servers_for_slo(workload, SLO)
    assert partitions > workload.offered_load  # every partition is stable
    assert meets(Workload(rate / partitions, delivery, service_scv=scv), 1, SLO)
    if partitions > 1:  # and it is the fewest: one partition less misses the SLO
        fewer = partitions - 1
        assert not meets(Workload(rate / fewer, delivery, service_scv=scv), 1, SLO)


def test_an_ordered_trigger_is_sized_for_its_peak() -> None:
    plan = plan_trigger(ORDERED, SLO)
    assert plan.partitions == 5  # the peak, 10/s, as worked above; 6/s would need fewer
    assert plan.in_flight == pytest.approx(1.0)
    assert any("ordered" in note for note in plan.notes)


def test_an_unordered_trigger_needs_one_partition_at_such_rates() -> None:
    plan = plan_trigger(replace(ORDERED, ordered=False), SLO)
    assert (plan.partitions, plan.in_flight) == (1, pytest.approx(1.0))


def test_a_trigger_sharing_its_subscriber_says_the_figure_is_an_upper_bound() -> None:
    shared = replace(ORDERED, sharing=("trainer-on-requested",))
    notes = plan_trigger(shared, SLO).notes
    assert any("trainer-on-requested" in note and "upper bound" in note for note in notes)


def test_without_deliveries_there_is_no_figure_and_a_note_says_why() -> None:
    idle = replace(ORDERED, delivery_rate=None, peak_delivery_rate=None, delivery_time=None)
    plan = plan_trigger(idle, SLO)
    assert plan.partitions is None and plan.in_flight is None
    assert any("no deliveries" in note for note in plan.notes)


def test_an_unreachable_slo_is_refused_not_answered() -> None:
    with pytest.raises(UnreachableSLOError, match="ordered partitions"):
        ordered_partitions(Workload(10, 0.1), WaitSLO.parse("200ms@p95"), max_partitions=4)
    slow = replace(ORDERED, delivery_time=1e6)
    plan = plan_trigger(slow, SLO)
    assert plan.partitions is None
    assert any("no recommendation" in note for note in plan.notes)
