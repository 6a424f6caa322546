"""How many Kafka partitions a Trigger's delivery rate needs, ordered Triggers included.

A Kafka broker's Trigger is one consumer group on the Broker's topic; a group never has
more active consumers than the topic has partitions, so the partitions bound how much
of a Trigger's delivery can run at once. How much depends on the delivery order
(`kafka.eventing.knative.dev/delivery.order`):

- ordered: a consumer sends a partition's next event only once the subscriber answered
  the previous one. Each partition is then a queue with one server whose service time is
  the delivery time (the subscriber's response time, its own waiting included). With
  events spread evenly over n partitions each sees lambda / n, so n is the smallest count
  whose single-server wait, M/G/1 at lambda / n by Allen-Cunneen (exactly
  Pollaczek-Khinchine), meets the wait SLO. n independent queues are slower than one
  queue with n servers, which is the price of the order; keys that hash unevenly need
  more, which no rate can show.
- unordered: a consumer keeps up to `max.poll.records` deliveries in flight (500 in
  Knative's data-plane defaults), so by Little's law the lambda * T deliveries in flight
  need ceil(lambda * T / max.poll.records) consumers, hence partitions; almost always 1.

Partitions are sized for the peak rate: Kafka can add partitions but never remove them,
and adding one moves keys to other partitions, which breaks the order of keyed events
across the change. The Broker's topic needs the largest figure of its Triggers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ._checks import positive, server_count
from .errors import CapacityError, OutOfRangeError, UnreachableSLOError
from .inverse import meets
from .queue import Workload
from .slo import WaitSLO

# max.poll.records in Knative's config-kafka-broker-data-plane ConfigMap.
KNATIVE_MAX_POLL_RECORDS = 500
# A bound on the search, far beyond any topic a Broker would have.
MAX_PARTITIONS = 10_000


@dataclass(frozen=True)
class TriggerMeasurements:
    """One Trigger, and what its subscriber was measured doing over a window."""

    trigger: str
    namespace: str
    broker: str
    subscriber: str  # a Service's name, or the subscriber's URI
    ordered: bool
    delivery_rate: float | None  # events/s delivered over the window
    peak_delivery_rate: float | None
    delivery_time: float | None  # mean seconds from delivery to the subscriber's answer
    delivery_scv: float | None
    # Other Triggers to the same subscriber, whose deliveries the rate includes.
    sharing: tuple[str, ...] = ()


@dataclass(frozen=True)
class TriggerPlan:
    measured: TriggerMeasurements
    slo: WaitSLO
    in_flight: float | None  # lambda * T at the peak rate: deliveries in flight (Little)
    partitions: int | None
    notes: tuple[str, ...] = field(default=())


def ordered_partitions(workload: Workload, slo: WaitSLO, *,
                       max_partitions: int = MAX_PARTITIONS) -> int:
    """The fewest partitions, one delivery at a time each, whose wait meets `slo`."""
    server_count(max_partitions)

    def enough(n: int) -> bool:
        share = Workload(workload.arrival_rate / n, workload.service_time,
                         service_scv=workload.service_scv, arrival_scv=workload.arrival_scv)
        return meets(share, 1, slo)

    low = math.floor(workload.offered_load)  # rho = a / n >= 1 at or below it: fails
    if low >= max_partitions or not enough(max_partitions):
        raise UnreachableSLOError(
            f"even {max_partitions} ordered partitions do not meet {slo} at "
            f"{workload.arrival_rate:g} events/s of {workload.service_time:g} s each; "
            "loosen the SLO, make deliveries faster, or deliver unordered")
    high = low + 1
    step = 1
    while not enough(high):  # invariant: `low` fails (or is 0), `high` is the next try
        low, step = high, step * 2
        high = min(high + step, max_partitions)
    while high - low > 1:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle
    return max(high, 1)


def unordered_partitions(in_flight: float, *,
                         max_poll_records: int = KNATIVE_MAX_POLL_RECORDS) -> int:
    """The consumers, hence partitions, that keep `in_flight` deliveries going at once."""
    if not (math.isfinite(in_flight) and in_flight >= 0):
        raise OutOfRangeError(f"deliveries in flight must be a finite number >= 0, "
                              f"not {in_flight!r}")
    return max(math.ceil(in_flight / server_count(max_poll_records)), 1)


def plan_trigger(measured: TriggerMeasurements, slo: WaitSLO) -> TriggerPlan:
    notes: list[str] = []
    rate = max(measured.delivery_rate or 0.0, measured.peak_delivery_rate or 0.0)
    if not rate or not measured.delivery_time:
        notes.append(f"no deliveries to {measured.subscriber} measured in the window: "
                     "nothing to size the partitions from")
        return TriggerPlan(measured, slo, None, None, tuple(notes))
    delivery_time = positive("the delivery time", measured.delivery_time)
    if measured.sharing:
        notes.append(f"sized for all of {measured.subscriber}'s deliveries, which "
                     f"{', '.join(measured.sharing)} share: an upper bound")
    in_flight = rate * delivery_time
    try:
        if measured.ordered:
            scv = measured.delivery_scv if measured.delivery_scv is not None else 1.0
            partitions: int | None = ordered_partitions(
                Workload(rate, delivery_time, service_scv=scv), slo)
            notes.append("ordered: one delivery at a time per partition, events spread "
                         "evenly over them (uneven keys need more)")
        else:
            partitions = unordered_partitions(in_flight)
    except CapacityError as error:
        notes.append(f"no recommendation: {error}")
        partitions = None
    return TriggerPlan(measured, slo, in_flight, partitions, tuple(notes))
