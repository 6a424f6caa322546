"""The page and its assets, packaged with troupe (static/), and the live-update stream.

Everything a page loads comes from here: no CDN, no font or script from elsewhere, so the
dashboard works offline and the content security policy can say 'self' alone.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Final

from troupe.local.dashboard.access import Access
from troupe.local.dashboard.http import Request, Response, Route, Stream
from troupe.local.dashboard.live import LiveUpdates

ASSETS: Final = {"app.js": "text/javascript; charset=utf-8",
                 "graph.js": "text/javascript; charset=utf-8",
                 "charts.js": "text/javascript; charset=utf-8",
                 "style.css": "text/css; charset=utf-8",
                 "favicon.svg": "image/svg+xml"}


@cache
def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def page_routes(access: Access, live: LiveUpdates) -> list[Route]:
    def index(_: Request) -> Response:
        page = _asset("index.html").replace(b"{{csrf}}", html.escape(access.csrf_token).encode())
        return Response(200, page, "text/html; charset=utf-8")

    def asset(request: Request) -> Response:
        name = request.params["name"]
        if name not in ASSETS:
            return Response(404, b"no such asset\n")
        return Response(200, _asset(name), ASSETS[name])

    def stream(_: Request) -> Stream:
        return Stream(live.stream())

    return [Route.of("GET", "/", index),
            Route.of("GET", "/static/(?P<name>[A-Za-z0-9_.-]+)", asset),
            Route.of("GET", "/api/stream", stream)]
