"""Cold starts as spans: a request the activator held while a function process started for
it gets a span of that wait, under the request's trace context, so a slow run says why.

(On a cluster, Knative's activator traces the same wait when its tracing is configured.)
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from troupe.local.eventing.broker.tracing import SpanSink
from troupe.local.observability.span_recorder import new_span_id
from troupe.traces import INSTANCE, ROLE, SERVICE, Role, parse_traceparent
from troupe.traces.records import AttributeValue

REVISION: Final = "troupe.revision"
# Binary-mode CloudEvents carry it as an attribute; other requests as W3C's own header.
_CONTEXT_HEADERS: Final = ("ce-traceparent", "traceparent")


class ColdStartSpans:
    def __init__(self, sink: SpanSink) -> None:
        self._sink = sink

    def waited(self, headers: Mapping[str, str], service: str, revision: str, instance: str,
               arrived: float, started: float, ready: float) -> None:
        """A request that arrived at `arrived` got an instance started at `started` and
        ready at `ready` (time.monotonic()); its span covers the part of the boot it
        waited for."""
        context = next((headers.get(name) for name in _CONTEXT_HEADERS if headers.get(name)),
                       None)
        parent = parse_traceparent(context)
        if parent is None:
            return
        wall, monotonic = time.time_ns(), time.monotonic()

        def at(moment: float) -> int:
            return wall - int((monotonic - moment) * 1e9)

        attributes: dict[str, AttributeValue] = {ROLE: Role.COLD_START.value, SERVICE: service,
                                                 REVISION: revision, INSTANCE: instance}
        self._sink.record(f"cold start {service}", parent[0], new_span_id(), parent[1],
                          at(max(arrived, started)), at(ready), attributes)
