"""The local data plane, modelled on the Knative Kafka broker.

Public API: `DataPlane` (ingress, topics, dispatchers), `load_eventing` (Brokers and
Triggers from `eventing/*.yaml`) and the error classes. Run it alone with
`python -m troupe.local.eventing.broker --eventing DIR`.

The path of one event, and the module of each step:

1. **ingress** (`ingress.py`, over `ingress_connection.py`, which feeds httptools, and
   `http11.py`): `POST /<namespace>/<broker>` is read and checked on the data plane's one
   asyncio loop (`troupe.local.host.loop`), with deadlines and a connection cap; while
   Kafka does not answer (`kafka_watch.py`, `recovery.py`) it answers 503.
2. **publish** (`publish.py`): Knative's extensions and the TTL loop guard are set, and
   the event is written to the Broker's topic in Kafka binary mode; the ingress answers
   202 once Kafka has acknowledged the write (acks=all).
3. **Kafka**: one topic per Broker, claimed by one data plane (`lease.py`); each Trigger
   has a consumer group (`offsets.py`).
4. **hand-over or fetch** (`reader.py`): an acknowledged write is handed to the topic's
   Triggers at once; what a Trigger has not seen that way (a restart, a lagging Trigger)
   is fetched from its committed offset.
5. **dispatch** (`dispatcher.py`): the Trigger's filter (`filters.py`, from `spec.py`)
   picks records; delivery is bounded, and ordered Triggers go one record at a time per
   partition; `progress.py` commits only what is finished.
6. **first attempt** (`troupe.local.delivery.client`): on the loop, over kept-alive
   connections, driven by `trigger_delivery.py`, the record transcoded to binary-mode
   HTTP (`http_messages.py`); a record that is not a CloudEvent becomes a dead letter
   (`unreadable.py`).
7. **retries** (`troupe.local.delivery.policy`): Knative's retry table and backoff, on
   worker threads (`workers.py`), each attempt through the same client with a wall-clock
   deadline and a size cap.
8. **reply or dead letter** (`trigger_delivery.py`): a 200 with an event is re-published
   through step 2; what fails for good goes to the `deadLetterSink` with the
   `knativeerror*` extensions, and if that fails too, to the parking topic (`parking.py`).
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
