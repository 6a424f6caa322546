"""The span of each delivery: a child of the event's `traceparent`, whose context the reply
carries, so that a run is one trace from its first event to its last.

Spans go over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or _TRACES_ENDPOINT) is set: to a
cluster's collector, or to `troupe up`, which points it at its own receiver. Without one,
no span is recorded and the SDK is never imported (~40 ms of CPU at each cold start): the
reply then carries the event's own traceparent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from cloudevents.core.v1.event import CloudEvent
from opentelemetry.context import Context as TraceContext
from opentelemetry.trace import (
    NoOpTracer,
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from troupe.events import MODELVERSION, RUNID, TRACEPARENT, is_known, lineage_of, resolve
from troupe.events.extensions import TRACESTATE
from troupe.traces import EVENT_ID, EVENT_SOURCE, EVENT_TYPE, ROLE, STATUS_CODE, Role
from troupe.traces import MODELVERSION as MODELVERSION_ATTRIBUTE
from troupe.traces import RUNID as RUNID_ATTRIBUTE

from .settings import Settings

_PROPAGATOR: Final = TraceContextTextMapPropagator()
INSTRUMENTATION: Final = "troupe.function"


class EventTracing:
    """Opens the span of each event an app handles; one per app."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._tracer: Tracer | None = None if settings.otlp_traces_url else NoOpTracer()
        self._shutdown: Callable[[], None] = _nothing
        self._making = threading.Lock()

    @property
    def tracer(self) -> Tracer:
        """Made on first use, in the process that handles events. gunicorn --preload builds
        the app in its master, which then forks the worker: a span processor made there
        would put its export thread in the master, and a fork with a second thread running
        can leave the worker a lock that thread held, locked for good."""
        tracer = self._tracer
        if tracer is None:
            with self._making:
                if self._tracer is None:
                    self._tracer, self._shutdown = _exporting_tracer(self._settings)
                tracer = self._tracer
        return tracer

    @contextmanager
    def handling(self, event: CloudEvent) -> Iterator[Span]:
        """The current span while `event` is handled, under the event's trace context."""
        lineage = lineage_of(event)
        attributes = {ROLE: Role.HANDLER.value, EVENT_ID: event.get_id(),
                      EVENT_SOURCE: event.get_source(), EVENT_TYPE: event.get_type(),
                      RUNID_ATTRIBUTE: str(lineage[RUNID])}
        if MODELVERSION in lineage:
            attributes[MODELVERSION_ATTRIBUTE] = str(lineage[MODELVERSION])
        name = resolve(event.get_type()).short if is_known(event.get_type()) else "event"
        with self.tracer.start_as_current_span(
            f"handle {name}", context=_parent_of(event), kind=SpanKind.CONSUMER,
            attributes=attributes, record_exception=False, set_status_on_exception=False,
        ) as span:
            yield span

    @staticmethod
    def answered(span: Span, status: int, outcome: str) -> None:
        """What the delivery's answer says about the span: 4xx and 5xx are errors."""
        span.set_attribute(STATUS_CODE, status)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR, f"{status} {outcome}"))

    @staticmethod
    def continued(reply: CloudEvent) -> CloudEvent:
        """`reply` carrying the current span's context, so that what it causes is its child;
        unchanged when no span is recorded."""
        context = get_current_span().get_span_context()
        if not context.is_valid or not context.trace_flags.sampled:
            return reply
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        attributes = dict(reply.get_attributes())
        attributes[TRACEPARENT] = carrier["traceparent"]
        if carrier.get("tracestate"):
            attributes[TRACESTATE] = carrier["tracestate"]
        else:
            attributes.pop(TRACESTATE, None)
        return CloudEvent(attributes, reply.get_data())

    def shutdown(self) -> None:
        """Export what is still buffered (a test's app, or a process on its way out)."""
        self._shutdown()


def _nothing() -> None:
    pass


def _parent_of(event: CloudEvent) -> TraceContext:
    carrier = {}
    for name in (TRACEPARENT, TRACESTATE):
        value = event.get_extension(name)
        if value is not None:
            carrier[name] = str(value)
    return _PROPAGATOR.extract(carrier)


def _exporting_tracer(settings: Settings) -> tuple[Tracer, Callable[[], None]]:
    # Imported only when spans go somewhere: the SDK and the exporter cost every cold start.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.util.re import parse_env_headers
    from requests import Session

    resource = Resource.create({SERVICE_NAME: settings.service,
                                SERVICE_VERSION: settings.revision or "unknown"})
    provider = TracerProvider(resource=resource)
    # The session is ours, not one the exporter makes: it would import requests inside its
    # constructor, where reading our imports cannot see it, and so every prewarmed instance
    # would import it afresh (60 ms of each cold start).
    exporter = OTLPSpanExporter(endpoint=settings.otlp_traces_url,
                                headers=parse_env_headers(settings.otlp_headers, liberal=True),
                                session=Session())
    # Batched on a thread of its own, started here: in the worker (EventTracing.tracer).
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider.get_tracer(INSTRUMENTATION), provider.shutdown
