"""The local data plane, modelled on the Knative Kafka broker.

Public API: `DataPlane` (ingress, topics, dispatchers), `load_eventing` (Brokers and
Triggers from `eventing/*.yaml`) and the error classes. Run it alone with
`python -m troupe.local.eventing.broker --eventing DIR`.
"""

from troupe.local.eventing.broker.dataplane import DataPlane, ResolveSubscriber, TriggerStatus
from troupe.local.eventing.broker.errors import (
    DataPlaneError,
    InvalidResourceError,
    PublishFailedError,
    RejectedEventError,
    UnknownBrokerError,
)
from troupe.local.eventing.broker.loader import load_eventing
from troupe.local.eventing.broker.spec import BrokerSpec, DeliverySpec, Destination, TriggerSpec

__all__ = [
    "BrokerSpec",
    "DataPlane",
    "DataPlaneError",
    "DeliverySpec",
    "Destination",
    "InvalidResourceError",
    "PublishFailedError",
    "RejectedEventError",
    "ResolveSubscriber",
    "TriggerSpec",
    "TriggerStatus",
    "UnknownBrokerError",
    "load_eventing",
]
