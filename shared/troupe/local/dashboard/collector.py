"""The OTLP/HTTP receiver: where the functions `troupe up` runs send their spans.

`troupe up` points each function's OTEL_EXPORTER_OTLP_ENDPOINT here, with the token in
OTEL_EXPORTER_OTLP_HEADERS, so the functions export exactly as they would to a cluster's
collector, and no other service is needed to see a run as one trace.
"""

from __future__ import annotations

import gzip
import zlib

from troupe.local.dashboard.http import HttpError, Request, Response, Route
from troupe.local.observability.otlp import (
    PROTOBUF,
    TRACES_PATH,
    InvalidExportError,
    export_answer,
    spans_from_export,
)
from troupe.local.observability.span_store import SpanStore


def collector_routes(store: SpanStore) -> list[Route]:
    def receive(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type != PROTOBUF:
            raise HttpError(415, f"send OTLP in protobuf ({PROTOBUF}), not {content_type!r}")
        body = request.body
        if request.headers.get("content-encoding", "").lower() == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error) as error:
                raise HttpError(400, f"the gzip body does not decompress: {error}") from None
        try:
            spans = spans_from_export(body)
        except InvalidExportError as error:
            raise HttpError(400, str(error)) from None
        store.add(spans)
        return Response(200, export_answer(), PROTOBUF)

    return [Route.of("POST", TRACES_PATH, receive)]
