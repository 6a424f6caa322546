"""Runs, by runid: the list, and each run's trace with its hops and its events' data.

A run is known from its spans (the span store) and from its events (the event feed); the
list merges both, so a run whose spans are still on their way is already there.
"""

from __future__ import annotations

from typing import Any, Final

from troupe.client.timeline import short_type
from troupe.events import RUNID
from troupe.local.dashboard.event_feed import EventFeed, event_json, event_time
from troupe.local.dashboard.http import Request, Response, Route, json_response
from troupe.local.observability.span_store import SpanStore
from troupe.traces import hops_of

MAX_RUNS: Final = 200


def runs(spans: SpanStore, feed: EventFeed | None) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for run in spans.runs():
        found[run.runid] = {"runid": run.runid, "start_ns": run.first_ns,
                            "end_ns": run.last_ns, "spans": run.spans, "errors": run.errors,
                            "events": 0, "first_type": None}
    for event in feed.events() if feed else []:
        runid = str(event.get_extension(RUNID) or event.get_id())
        entry = found.setdefault(runid, {"runid": runid, "start_ns": None, "end_ns": None,
                                         "spans": 0, "errors": 0, "events": 0,
                                         "first_type": None})
        entry["events"] += 1
        when = event_time(event)
        stamp = int(when.timestamp() * 1e9) if when else None
        if entry["first_type"] is None or (stamp and entry.get("first_event_ns", stamp) > stamp):
            entry["first_type"] = short_type(event.get_type())
            entry["first_event_ns"] = stamp
        if stamp is not None:
            entry["start_ns"] = min(entry["start_ns"] or stamp, stamp)
            entry["end_ns"] = max(entry["end_ns"] or stamp, stamp)
    listed = sorted(found.values(), key=lambda run: run["start_ns"] or 0, reverse=True)
    return listed[:MAX_RUNS]


def runs_routes(spans: SpanStore, feed: EventFeed | None) -> list[Route]:
    def listing(_: Request) -> Response:
        return json_response({"runs": runs(spans, feed)})

    def one(request: Request) -> Response:
        runid = request.params["runid"]
        recorded = spans.run(runid)
        events = feed.events(runid) if feed else []
        if not recorded and not events:
            return json_response({"error": f"no run {runid}: no span and no event names it"},
                                 404)
        return json_response({
            "runid": runid,
            "spans": [span.to_json() for span in recorded],
            "hops": [hop.to_json() for hop in hops_of(recorded)],
            "events": [event_json(event) for event in events],
        })

    return [Route.of("GET", "/api/runs", listing),
            Route.of("GET", "/api/runs/(?P<runid>[^/]+)", one)]
