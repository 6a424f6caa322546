"""Request bodies over a limit are refused before they are read, let alone parsed.

Every function, the predictor included, takes bodies of at most TROUPE_MAX_EVENT_BYTES
(1 MiB by default, the Knative Kafka Broker's own limit on an event). Werkzeug refuses a
larger Content-Length before reading anything, but stops a streamed (chunked) body at
MAX_CONTENT_LENGTH without a word, handing back the bytes so far as if they were all.
So MAX_CONTENT_LENGTH is one byte over the limit, and a body that reaches it is refused:
that byte tells a stream over the limit from one that ends at it, and nothing beyond it
is ever read.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from .settings import SettingsError


def limit_request_bodies(app: Flask, limit: int) -> None:
    """Make `app` read no more than `limit` + 1 bytes of any request body."""
    if limit < 1:
        raise SettingsError(f"TROUPE_MAX_EVENT_BYTES must be at least 1, not {limit}")
    app.config["MAX_CONTENT_LENGTH"] = limit + 1


def read_body_within(limit: int) -> bytes | None:
    """The current request's body, or None when it is larger than `limit` bytes (in an app
    set up by limit_request_bodies with the same limit)."""
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        return None
    return body if len(body) <= limit else None
