"""Every vocabulary type goes through a real function app on loopback and back, in both
HTTP content modes; the reply comes back in binary mode with the lineage of its cause."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
from cloudevents.core.v1.event import CloudEvent
from flask import Flask
from troupe import events
from troupe.function import Context, Settings, create_app

ENCODINGS = {"binary": events.to_http_binary, "structured": events.to_http_structured}
Serve = Callable[[Flask], str]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def echo(event: CloudEvent, ctx: Context[Any]) -> CloudEvent:
    """Replies with an event of the same type and data, built as handlers build replies."""
    return ctx.reply(event.get_type(), event.get_data())  # type: ignore[arg-type]


def test_sample_data_matches_every_schema(sample_data: Callable[[str], dict[str, Any]]) -> None:
    for event_type in events.VOCABULARY:
        events.validate_data(event_type.type, sample_data(event_type.short))


@pytest.mark.parametrize("mode", sorted(ENCODINGS))
@pytest.mark.parametrize("short", [t.short for t in events.VOCABULARY])
def test_every_type_round_trips(
    short: str,
    mode: str,
    sample_data: Callable[[str], dict[str, Any]],
    serve: Serve,
    settings: Settings,
) -> None:
    url = serve(create_app(echo, settings, consumes=[t.type for t in events.VOCABULARY]))
    sent = events.make_event(
        short,
        sample_data(short),
        source="/tests/producer",
        extensions={"modelversion": "v2", "traceparent": TRACEPARENT},
    )
    message = ENCODINGS[mode](sent)

    response = requests.post(url, headers=message.headers, data=message.body, timeout=10)

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["ce-specversion"] == "1.0"  # binary mode
    reply = events.from_http(dict(response.headers), response.content)
    assert reply.get_type() == sent.get_type()
    assert reply.get_data() == sent.get_data()
    assert reply.get_source() == "/troupe/echo"
    assert reply.get_id() != sent.get_id()
    assert reply.get_extension("runid") == sent.get_id()
    assert reply.get_extension("modelversion") == "v2"
    assert reply.get_extension("traceparent") == TRACEPARENT
    events.validate(reply)
