"""Brokers and Triggers as the data plane runs them, read from Knative resource dicts.

Field names and defaults follow Knative Eventing v1 (`eventing.knative.dev/v1`) and the
Knative Kafka broker: one topic per Broker, one consumer group per Trigger, and a Trigger's
`spec.delivery` falling back to its Broker's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from troupe.local.conventions import DEFAULT_NAMESPACE, parse_iso8601_duration
from troupe.local.eventing.broker.errors import InvalidResourceError
from troupe.local.eventing.broker.filters import EventFilter, FilterErrors, compile_trigger_filter

DEFAULT_BROKER: Final = "default"


class KafkaRecord(Protocol):
    """What the data plane reads of a record: kafka-python's ConsumerRecord, or the
    StoredRecord a write hands over on its acknowledgement (publish.py)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Any: ...  # a list of (name, value) pairs; a value may be None


ORDER_ANNOTATION: Final = "kafka.eventing.knative.dev/delivery.order"
@dataclass(frozen=True)
class Destination:
    """A Knative Destination: a `ref` (resolved by the serving side) and/or a `uri`."""

    uri: str | None = None
    ref: Mapping[str, Any] | None = None

    @classmethod
    def parse(cls, raw: Any, resource: str, field_name: str) -> Destination:
        if not isinstance(raw, Mapping) or not (raw.get("uri") or raw.get("ref")):
            raise InvalidResourceError(resource, field_name, "needs a ref or a uri")
        ref = raw.get("ref")
        if ref is not None and (not isinstance(ref, Mapping) or not ref.get("name")):
            raise InvalidResourceError(resource, f"{field_name}.ref", "needs at least a name")
        uri = raw.get("uri")
        if uri is not None and not isinstance(uri, str):
            raise InvalidResourceError(resource, f"{field_name}.uri", "must be a string")
        return cls(uri=uri, ref=dict(ref) if ref else None)

    def describe(self) -> str:
        if self.ref is not None:
            return f"{self.ref.get('kind', 'Service')}/{self.ref.get('name')}" + (
                self.uri or "")
        return self.uri or "?"


@dataclass(frozen=True)
class DeliverySpec:
    """Knative's DeliverySpec; None means "not set here" so a Broker's value can fill in."""

    retry: int | None = None
    backoff_policy: str | None = None
    backoff_delay_s: float | None = None
    timeout_s: float | None = None
    dead_letter_sink: Destination | None = None

    @classmethod
    def parse(cls, raw: Any, resource: str, field_name: str = "spec.delivery") -> DeliverySpec:
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise InvalidResourceError(resource, field_name, "must be a mapping")
        retry = raw.get("retry")
        if retry is not None and (isinstance(retry, bool) or not isinstance(retry, int)
                                  or retry < 0):
            raise InvalidResourceError(resource, f"{field_name}.retry", "must be an integer >= 0")
        policy = raw.get("backoffPolicy")
        if policy is not None and policy not in ("linear", "exponential"):
            raise InvalidResourceError(
                resource, f"{field_name}.backoffPolicy", "must be linear or exponential")
        delay = raw.get("backoffDelay")
        timeout = raw.get("timeout")
        sink = raw.get("deadLetterSink")
        return cls(
            retry=retry,
            backoff_policy=policy,
            backoff_delay_s=None if delay is None
            else parse_iso8601_duration(delay, resource, f"{field_name}.backoffDelay"),
            timeout_s=None if timeout is None
            else parse_iso8601_duration(timeout, resource, f"{field_name}.timeout"),
            dead_letter_sink=None if sink is None
            else Destination.parse(sink, resource, f"{field_name}.deadLetterSink"),
        )

    def over(self, fallback: DeliverySpec) -> DeliverySpec:
        """This spec with unset fields taken from `fallback` (a Trigger over its Broker)."""
        return replace(self, **{
            name: getattr(fallback, name)
            for name in ("retry", "backoff_policy", "backoff_delay_s", "timeout_s",
                         "dead_letter_sink")
            if getattr(self, name) is None
        })

    def backoff_s(self, retry_number: int) -> float:
        """Delay before retry `retry_number` (1-based), as Knative computes it."""
        delay = self.backoff_delay_s if self.backoff_delay_s is not None else 0.2
        if self.backoff_policy == "linear":
            return delay * retry_number
        return float(delay * 2**retry_number)


@dataclass(frozen=True)
class BrokerSpec:
    namespace: str
    name: str
    delivery: DeliverySpec = field(default_factory=DeliverySpec)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def topic(self) -> str:
        # The Knative Kafka broker's topic naming.
        return f"knative-broker-{self.namespace}-{self.name}"


@dataclass(frozen=True)
class TriggerSpec:
    namespace: str
    name: str
    broker: str
    subscriber: Destination
    event_filter: EventFilter = field(compare=False)
    delivery: DeliverySpec = field(default_factory=DeliverySpec)
    ordered: bool = False
    # Counted by `event_filter` as it runs: events its cesql filters could not evaluate.
    filter_errors: FilterErrors = field(default_factory=FilterErrors, compare=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def broker_key(self) -> tuple[str, str]:
        return (self.namespace, self.broker)

    @property
    def consumer_group(self) -> str:
        return f"knative-trigger-{self.namespace}-{self.name}"


def _metadata(resource: Mapping[str, Any], kind: str, default_namespace: str) -> tuple[str, str]:
    metadata = resource.get("metadata")
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        raise InvalidResourceError(kind, "metadata.name", "is missing")
    namespace = metadata.get("namespace") or default_namespace
    return str(namespace), metadata["name"]


def _spec(resource: Mapping[str, Any], label: str) -> Mapping[str, Any]:
    spec = resource.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidResourceError(label, "spec", "must be a mapping")
    return spec


def parse_broker(resource: Mapping[str, Any],
                 default_namespace: str = DEFAULT_NAMESPACE) -> BrokerSpec:
    namespace, name = _metadata(resource, "Broker", default_namespace)
    label = f"Broker {namespace}/{name}"
    return BrokerSpec(namespace, name, DeliverySpec.parse(_spec(resource, label).get("delivery"),
                                                          label))


def parse_trigger(resource: Mapping[str, Any],
                  default_namespace: str = DEFAULT_NAMESPACE) -> TriggerSpec:
    namespace, name = _metadata(resource, "Trigger", default_namespace)
    label = f"Trigger {namespace}/{name}"
    spec = _spec(resource, label)
    broker = spec.get("broker") or DEFAULT_BROKER
    annotations = (resource.get("metadata") or {}).get("annotations") or {}
    order = annotations.get(ORDER_ANNOTATION, "unordered")
    if order not in ("ordered", "unordered"):
        raise InvalidResourceError(
            label, f"metadata.annotations[{ORDER_ANNOTATION}]", "must be ordered or unordered")
    filter_errors = FilterErrors()
    return TriggerSpec(
        namespace=namespace,
        name=name,
        broker=str(broker),
        subscriber=Destination.parse(spec.get("subscriber"), label, "spec.subscriber"),
        event_filter=compile_trigger_filter(spec, label, filter_errors),
        delivery=DeliverySpec.parse(spec.get("delivery"), label),
        ordered=order == "ordered",
        filter_errors=filter_errors,
    )
