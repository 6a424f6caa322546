"""Dead letters: why each one failed, and a replay that publishes it to the broker again.

The same records and the same replay as `troupe dead-letters`. A replay is a POST, so the
access check asks for the page's CSRF token (access.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from troupe.client.broker import BrokerError, post_event
from troupe.client.deadletters import dead_letter_records, replayable
from troupe.events import EventError
from troupe.local.dashboard.http import HttpError, Request, Response, Route, json_response
from troupe.store import Store, StoreError


def dead_letters_routes(store_url: str, broker_url: Callable[[], str | None]) -> list[Route]:
    def listing(_: Request) -> Response:
        try:
            records = dead_letter_records(Store(store_url))
        except StoreError as error:
            raise HttpError(503, f"the store cannot be read: {error}") from None
        return json_response({"dead_letters": [_shown(key, record) for key, record in records]})

    def replay(request: Request) -> Response:
        asked = request.json()
        if not isinstance(asked, dict) or not isinstance(asked.get("key"), str):
            raise HttpError(400, 'send {"key": "<a dead letter\'s key>", "new_id": false}')
        key = asked["key"]
        try:
            record = Store(store_url).read_json(key)
        except StoreError as error:
            raise HttpError(404, f"no dead letter {key}: {error}") from None
        url = broker_url()
        if url is None:
            raise HttpError(503, "the broker is not running: start the runtime with its "
                                 "data plane")
        try:
            event = replayable(record, new_id=bool(asked.get("new_id")))
            post_event(url, event)
        except (EventError, BrokerError) as error:
            raise HttpError(502, str(error)) from None
        return json_response({"replayed": key, "id": event.get_id()}, 202)

    return [Route.of("GET", "/api/dead-letters", listing),
            Route.of("POST", "/api/dead-letters/replay", replay)]


def _shown(key: str, record: dict[str, Any]) -> dict[str, Any]:
    attributes = record.get("attributes") or {}
    error = record.get("error") or {}
    return {"key": key, "received": record.get("received"), "id": attributes.get("id"),
            "type": attributes.get("type"), "source": attributes.get("source"),
            "runid": attributes.get("runid"), "subscriber": error.get("dest"),
            "status": error.get("code"), "answer": error.get("data"),
            "data": record.get("data")}
