"""Trace data: the spans every hop of a run leaves, and what they say about each hop.

Functions record their spans with the OpenTelemetry SDK (troupe.function.tracing); the
local runtime records its own (the data plane, the activator) and collects everyone's
(troupe.local.observability). Both end up as `SpanRecord`s. `hops_of` reads a run's spans
as the hops a user asks about, with queue wait, cold start and handler time; `troupe
timeline` and the dashboard show the same hops.

Imported by functions, the runtime and the CLI alike: it needs only opentelemetry-api.
"""

from .context import format_traceparent, parse_traceparent
from .files import TRACE_FILE, read_run_spans, read_span_file
from .hops import Hop, hops_of
from .records import (
    ATTEMPT,
    BROKER,
    EVENT_ID,
    EVENT_SOURCE,
    EVENT_TYPE,
    INSTANCE,
    MODELVERSION,
    ROLE,
    RUNID,
    SERVICE,
    STATUS_CODE,
    TRIGGER,
    Role,
    SpanRecord,
)

__all__ = [
    "ATTEMPT", "BROKER", "EVENT_ID", "EVENT_SOURCE", "EVENT_TYPE", "INSTANCE", "MODELVERSION",
    "ROLE", "RUNID", "SERVICE", "STATUS_CODE", "TRACE_FILE", "TRIGGER", "Hop", "Role",
    "SpanRecord", "format_traceparent", "hops_of", "parse_traceparent", "read_run_spans",
    "read_span_file",
]
