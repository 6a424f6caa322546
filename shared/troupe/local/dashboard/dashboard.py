"""The dashboard as `troupe up` runs it: its pages and APIs mounted on the server that
already takes the functions' spans, fed by the runtime's parts.

Live updates: each batch of spans names the runs it touched, and each event the feed
takes names its run; open pages hear both (live.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cloudevents.core.v1.event import CloudEvent

from troupe.client.timeline import short_type
from troupe.events import RUNID
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.dashboard.choreography import choreography, choreography_routes
from troupe.local.dashboard.dead_letters import dead_letters_routes
from troupe.local.dashboard.declarations import Declarations
from troupe.local.dashboard.event_feed import EventFeed
from troupe.local.dashboard.live import LiveUpdates
from troupe.local.dashboard.models import models_routes
from troupe.local.dashboard.pages import page_routes
from troupe.local.dashboard.runs import runs_routes
from troupe.local.dashboard.server import DashboardServer
from troupe.local.observability.span_store import SpanStore


@dataclass(frozen=True)
class DashboardSources:
    """What the dashboard reads, as the runtime hands it over."""

    objects: ObjectStore
    spans: SpanStore
    functions: Path  # the project's functions/ folder
    function_environment: Mapping[str, str]  # what the runtime adds to a function's
    store_url: str
    prometheus_url: Callable[[], str | None]
    broker_url: Callable[[], str | None]
    event_log: tuple[str, str] | None  # Kafka bootstrap servers and the broker's topic


class Dashboard:
    def __init__(self, server: DashboardServer, sources: DashboardSources) -> None:
        self._server = server
        self.live = LiveUpdates()
        self.feed = EventFeed(*sources.event_log) if sources.event_log else None
        declarations = self._declarations = Declarations(sources.functions,
                                                         sources.function_environment)
        self._objects = sources.objects
        self._routes = [
            *page_routes(server.access, self.live),
            *choreography_routes(sources.objects, declarations),
            *runs_routes(sources.spans, self.feed),
            *models_routes(sources.store_url, sources.objects, self.feed,
                           sources.prometheus_url),
            *dead_letters_routes(sources.store_url, sources.broker_url),
        ]
        sources.spans.subscribe(self._spans_added)
        if self.feed is not None:
            self.feed.subscribe(self._event_logged)

    def start(self) -> Dashboard:
        # Asked now, the functions' declarations are read while nobody looks yet.
        choreography(self._objects, self._declarations)
        if self.feed is not None:
            self.feed.start()
        self._server.mount(self._routes)
        return self

    def stop(self) -> None:
        self.live.close()
        if self.feed is not None:
            self.feed.stop()

    def _spans_added(self, runids: set[str], traces: set[str]) -> None:
        self.live.publish("spans", {"runids": sorted(runids), "traces": sorted(traces)})

    def _event_logged(self, event: CloudEvent) -> None:
        self.live.publish("event", {"runid": str(event.get_extension(RUNID) or event.get_id()),
                                    "id": event.get_id(), "type": short_type(event.get_type())})
