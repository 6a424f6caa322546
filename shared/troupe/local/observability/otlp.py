"""OTLP/HTTP in protobuf, as OpenTelemetry's exporters send it: trace export requests read
into span records, with the messages of OpenTelemetry's own protobuf package."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from troupe.local.errors import LocalError
from troupe.traces import SpanRecord

TRACES_PATH: Final = "/v1/traces"
PROTOBUF: Final = "application/x-protobuf"


class InvalidExportError(LocalError, ValueError):
    """A body that is not an OTLP trace export request in protobuf."""


def spans_from_export(body: bytes) -> list[SpanRecord]:
    """The spans of an ExportTraceServiceRequest; InvalidExportError for anything else."""
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as error:
        raise InvalidExportError(f"not an OTLP trace export request in protobuf: {error}") \
            from None
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = str(resource.get("service.name", "unknown"))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise InvalidExportError("a span without a valid trace id and span id")
                failed = span.status.code == Status.STATUS_CODE_ERROR
                spans.append(SpanRecord(
                    trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_id=span.parent_span_id.hex() or None, name=span.name,
                    service=service, start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    error=(span.status.message or "error") if failed else None,
                    attributes=_attributes(span.attributes)))
    return spans


def export_answer() -> bytes:
    """The body of a successful export's answer."""
    return bytes(ExportTraceServiceResponse().SerializeToString())


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, str | int | float | bool]:
    found: dict[str, str | int | float | bool] = {}
    for pair in pairs:
        value = _plain(pair.value)
        if value is not None:
            found[pair.key] = value
    return found


def _plain(value: AnyValue) -> str | int | float | bool | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind is None:
        return None
    return str(value)  # arrays, maps and bytes: kept readable, not interpreted
