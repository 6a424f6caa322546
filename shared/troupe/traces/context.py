"""W3C trace context (the `traceparent` CloudEvents extension) to and from trace and span ids.

Parsing is OpenTelemetry's own propagator; what comes back is the pair of hex ids troupe
keeps in its span records.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.trace import get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_PROPAGATOR: Final = TraceContextTextMapPropagator()


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """(trace id, span id) in hex, or None when `value` is absent or not a valid traceparent."""
    if not value:
        return None
    context = get_current_span(_PROPAGATOR.extract({"traceparent": value})).get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"
