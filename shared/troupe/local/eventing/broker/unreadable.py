"""Records a Trigger cannot read as CloudEvents, as its dead-letter sink gets them.

Anyone can write to a Broker's topic, and Kafka allows what a CloudEvent does not: a
header with no value (null), header bytes that are not UTF-8, a record with no value, or
no `ce_` headers at all. Such a record must not stop the Trigger, and must not vanish
either. Knative's KafkaSource wraps a record that is not a CloudEvent in an event of type
`dev.knative.kafka.event`, named by its partition and offset; the Broker does the same for
the Trigger's dead-letter sink, with `knativeerrordata` saying why the record could not be
read. Its offset then moves on like any other dead letter's.
"""

from __future__ import annotations

from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent

from troupe.events import KAFKA_RECORD
from troupe.local.eventing.broker.spec import KafkaRecord, TriggerSpec

OCTET_STREAM: Final = "application/octet-stream"


def unreadable_record_event(trigger: TriggerSpec, record: KafkaRecord) -> CloudEvent:
    """The record as an event that can be delivered: its value as opaque bytes."""
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "type": KAFKA_RECORD,
        "id": f"partition:{record.partition}/offset:{record.offset}",
        "source": f"/apis/v1/namespaces/{trigger.namespace}/brokers/{trigger.broker}"
                  f"#{record.topic}",
        "subject": f"partition:{record.partition}#{record.offset}",
        "datacontenttype": OCTET_STREAM,
    }
    if record.key:
        attributes["key"] = record.key.decode("utf-8", "replace")
    return CloudEvent(attributes, record.value or None)
