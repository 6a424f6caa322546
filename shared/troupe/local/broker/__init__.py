"""The local data plane, modelled on the Knative Kafka broker.

Public API: `DataPlane` (ingress, topics, dispatchers), `load_eventing` (Brokers and
Triggers from `eventing/*.yaml`) and the error classes. Run it alone with
`python -m troupe.local.broker --eventing DIR`.
"""

from .dataplane import DataPlane, ResolveSubscriber, TriggerStatus
from .errors import (
    DataPlaneError,
    InvalidResourceError,
    PublishFailedError,
    RejectedEventError,
    UnknownBrokerError,
)
from .loader import load_eventing
from .spec import BrokerSpec, DeliverySpec, Destination, TriggerSpec

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
