"""`?watch=true`: a stream of ADDED, MODIFIED, DELETED and BOOKMARK events, one JSON object
a line, as the API server sends them to `kubectl get -w`, `kubectl wait`, client-go's
informers and the Python client's `watch.Watch()`.

Without a resourceVersion (or with "0") the stream opens with an ADDED event for every
object there is; with one, it replays what changed after it, from the store's event log.
A version the log no longer holds ends the stream with an ERROR event carrying a 410
`Expired` Status, which tells the client to list again. `timeoutSeconds` ends the stream
cleanly; `allowWatchBookmarks` adds BOOKMARK events that carry only the current
resourceVersion, so a quiet client can still resume from a recent one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from troupe.local.controlplane.events import Event, Expired
from troupe.local.controlplane.kinds import Kind, Obj
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.controlplane.selectors import Selector
from troupe.local.controlplane.status import failure

# The API server closes a watch after 30 to 60 minutes unless the client says otherwise.
DEFAULT_TIMEOUT: Final = 1800.0
# The annotation of the BOOKMARK that ends the initial events of `sendInitialEvents`.
INITIAL_EVENTS_END: Final = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchRequest:
    kind: Kind
    api_version: str  # what the client asked for; the events' objects carry it
    namespace: str | None
    selector: Selector
    resource_version: int | None  # None: start with the objects there are
    timeout: float
    bookmarks: bool
    send_initial_events: bool
    gone: Callable[[], bool] = lambda: False  # whether the client has disconnected


def watch(objects: ObjectStore, request: WatchRequest, render: Callable[[Obj], Obj],
          stopping: threading.Event, bookmark_interval: float = 10.0) -> Iterator[bytes]:
    """The event lines of one watch; `render` turns an object into what the client asked
    for (the object itself, or a Table row)."""
    deadline = time.monotonic() + request.timeout

    def line(change: str, obj: Obj) -> bytes:
        return json.dumps({"type": change, "object": obj}, separators=(",", ":")).encode() + b"\n"

    def bookmark(version: int, initial_end: bool = False) -> bytes:
        metadata: Obj = {"resourceVersion": str(version)}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        return line("BOOKMARK", {"kind": request.kind.kind, "apiVersion": request.api_version,
                                 "metadata": metadata})

    def visible(obj: Obj) -> bool:
        namespace = (obj.get("metadata") or {}).get("namespace")
        return ((request.namespace is None or namespace == request.namespace)
                and request.selector(obj))

    def shown(obj: Obj) -> Obj:
        return render({**obj, "apiVersion": request.api_version})

    if request.resource_version is None or request.send_initial_events:
        existing, version = objects.list_at_version(request.kind, request.namespace)
        for obj in existing:
            if request.selector(obj):
                yield line("ADDED", shown(obj))
        if request.send_initial_events and request.bookmarks:
            yield bookmark(version, initial_end=True)
    else:
        version = request.resource_version
    next_bookmark = time.monotonic() + bookmark_interval
    while not stopping.is_set() and not request.gone():
        try:
            events, latest = objects.events.after(version, request.kind)
        except Expired as error:
            yield line("ERROR", failure(410, "Expired", str(error)))
            return
        for event in events:
            change = _change_seen(event, visible)
            if change == "DELETED" and event.change == "MODIFIED" and event.previous:
                # It left the selection: the client last saw it as it was, at this version.
                yield line(change, shown({**event.previous, "metadata": {
                    **event.previous["metadata"], "resourceVersion": str(event.version)}}))
            elif change is not None:
                yield line(change, shown(event.obj))
        version = max(version, latest)
        now = time.monotonic()
        if now >= deadline:
            if request.bookmarks:
                yield bookmark(version)
            return
        if request.bookmarks and now >= next_bookmark:
            yield bookmark(version)
            next_bookmark = now + bookmark_interval
        # At least once a second, to notice a client that left a quiet watch.
        objects.events.wait_past(version, min(deadline, next_bookmark, now + 1.0) - now)


def _change_seen(event: Event, visible: Callable[[Obj], bool]) -> str | None:
    """What a watch with a selector sees of a change: an object entering the selection is
    ADDED to it, one leaving it is DELETED from it."""
    now = event.change != "DELETED" and visible(event.obj)
    before = event.previous is not None and visible(event.previous)
    if event.change == "DELETED":
        return "DELETED" if before else None
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    return "DELETED" if before else None

