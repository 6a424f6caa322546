"""troupe.capacity: a queueing model of a revision, to predict waits and size it.

No I/O: every function answers from its arguments. The commands (`troupe capacity`) and
the runtime feed it what they measure or what the user asks.

- `predict_wait(Workload(...), servers)`: Erlang C for M/M/c; Allen-Cunneen for G/G/c.
- `servers_for_slo`, `max_arrival_rate`: the inverse questions, against a `WaitSLO`.
- `cold_start_probability`: scale from zero as a setup time.
- `plan_service`: from a Service's measurements to its recommended scale bounds.
- `plan_trigger`: the Kafka partitions a Trigger's delivery rate needs, ordered or not.

Every question outside the model's range raises a `CapacityError` (a ValueError) whose
message says what to change; nothing returns a number that means nothing.
"""

from .cold_start import cold_start_probability
from .errors import CapacityError, OutOfRangeError, UnreachableSLOError, UnstableQueueError
from .histogram import histogram_scv
from .inverse import max_arrival_rate, meets, servers_for_slo
from .partitions import (
    TriggerMeasurements,
    TriggerPlan,
    ordered_partitions,
    plan_trigger,
    unordered_partitions,
)
from .plan import Recommendation, ServiceMeasurements, ServicePlan, plan_service
from .queue import WaitPrediction, Workload, empty_probability, erlang_c, predict_wait
from .slo import WaitSLO

__all__ = [
    "CapacityError",
    "OutOfRangeError",
    "Recommendation",
    "ServiceMeasurements",
    "ServicePlan",
    "TriggerMeasurements",
    "TriggerPlan",
    "UnreachableSLOError",
    "UnstableQueueError",
    "WaitPrediction",
    "WaitSLO",
    "Workload",
    "cold_start_probability",
    "empty_probability",
    "erlang_c",
    "histogram_scv",
    "max_arrival_rate",
    "meets",
    "ordered_partitions",
    "plan_service",
    "plan_trigger",
    "predict_wait",
    "servers_for_slo",
    "unordered_partitions",
]
