"""The event vocabulary: every CloudEvent type troupe produces or consumes, declared once.

Nothing outside this module spells a type string; use the constants or `resolve()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from .errors import UnknownEventTypeError

SCHEMA_BASE_URI: Final = "https://troupe.dev/schemas/events/"


@dataclass(frozen=True)
class EventType:
    short: str  # the name users type: data-arrived
    type: str  # the CloudEvent type: dev.troupe.data.arrived
    description: str
    produced_by: tuple[str, ...]
    consumed_by: tuple[str, ...]

    @property
    def schema_uri(self) -> str:
        """The `dataschema` of events of this type and the `$id` of its JSON Schema."""
        return f"{SCHEMA_BASE_URI}{self.short}.json"


DATA_ARRIVED: Final = "dev.troupe.data.arrived"
DATA_VALIDATED: Final = "dev.troupe.data.validated"
DATA_REJECTED: Final = "dev.troupe.data.rejected"
TRAINING_REQUESTED: Final = "dev.troupe.training.requested"
TRAINING_FINISHED: Final = "dev.troupe.training.finished"
TRAINING_FAILED: Final = "dev.troupe.training.failed"
MODEL_APPROVED: Final = "dev.troupe.model.approved"
MODEL_REJECTED: Final = "dev.troupe.model.rejected"
MODEL_DEPLOYED: Final = "dev.troupe.model.deployed"
MODEL_PROMOTED: Final = "dev.troupe.model.promoted"
MODEL_ROLLED_BACK: Final = "dev.troupe.model.rolledback"
METRIC_DEGRADED: Final = "dev.troupe.metric.degraded"
CANARY_PASSED: Final = "dev.troupe.canary.passed"
ROLLBACK_REQUESTED: Final = "dev.troupe.rollback.requested"
# Knative's PingSource type; declared here because the monitor consumes it.
PING: Final = "dev.knative.sources.ping"
# Knative's type for a Kafka record that is not itself a CloudEvent: what a KafkaSource
# sends for a plain record, and what a Broker dead-letters a record it cannot read as.
KAFKA_RECORD: Final = "dev.knative.kafka.event"

VOCABULARY: Final[tuple[EventType, ...]] = (
    EventType("data-arrived", DATA_ARRIVED, "A dataset is ready to be validated.",
              ("users", "kafkasource", "cli"), ("ingest",)),
    EventType("data-validated", DATA_VALIDATED,
              "A dataset passed validation and is stored by content hash.",
              ("ingest",), ("trainer",)),
    EventType("data-rejected", DATA_REJECTED, "A dataset failed validation; data says why.",
              ("ingest",), ()),
    EventType("training-requested", TRAINING_REQUESTED,
              "Train a new model version on a window of validated datasets.",
              ("policy", "users"), ("trainer",)),
    EventType("training-finished", TRAINING_FINISHED,
              "A candidate model version was trained and registered.",
              ("trainer",), ("evaluator",)),
    EventType("training-failed", TRAINING_FAILED, "Training did not produce a model.",
              ("trainer",), ()),
    EventType("model-approved", MODEL_APPROVED,
              "A candidate beat the champion within tolerance and may be deployed.",
              ("evaluator",), ("deployer",)),
    EventType("model-rejected", MODEL_REJECTED, "A candidate did not pass evaluation.",
              ("evaluator",), ()),
    EventType("model-deployed", MODEL_DEPLOYED,
              "A model version is serving traffic (all of it, or a canary share).",
              ("deployer",), ("monitor",)),
    EventType("model-promoted", MODEL_PROMOTED, "A canary now takes all the traffic.",
              ("deployer",), ()),
    EventType("model-rolled-back", MODEL_ROLLED_BACK,
              "Traffic went back to the previous model version.",
              ("deployer",), ()),
    EventType("metric-degraded", METRIC_DEGRADED,
              "A serving metric breached its threshold for long enough to act on.",
              ("monitor",), ("policy",)),
    EventType("canary-passed", CANARY_PASSED,
              "A canary did as well as the champion over its observation window.",
              ("monitor",), ("deployer",)),
    EventType("rollback-requested", ROLLBACK_REQUESTED,
              "Restore the previous model version.", ("policy", "users"), ("deployer",)),
    EventType("ping", PING, "A PingSource tick.", ("pingsource",), ("monitor",)),
)

_BY_NAME: Final[dict[str, EventType]] = {
    **{t.short: t for t in VOCABULARY},
    **{t.type: t for t in VOCABULARY},
}


def resolve(name: str) -> EventType:
    """Look up a type by its short name (`data-arrived`) or its CloudEvent type."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownEventTypeError(name, [t.short for t in VOCABULARY]) from None


def is_known(name: str) -> bool:
    return name in _BY_NAME
