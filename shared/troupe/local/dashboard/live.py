"""Live updates for open pages, as server-sent events: what changed, never the data itself.

A page told that a run has new spans or events fetches what it shows again, so a message
lost to a slow page costs nothing but a later refresh. Each page has a bounded queue; one
that falls that far behind misses messages instead of holding the runtime's memory.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any, Final

KEEP_ALIVE_S: Final = 5.0
_QUEUE_SIZE: Final = 256
_CLOSED: Final = b""


class LiveUpdates:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pages: set[queue.Queue[bytes]] = set()
        self._closed = False

    def publish(self, kind: str, data: Any) -> None:
        """Send `data` (JSON) as an event named `kind` to every open page."""
        message = f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()
        with self._lock:
            pages = list(self._pages)
        for page in pages:
            # A page this far behind refreshes on its next message.
            with contextlib.suppress(queue.Full):
                page.put_nowait(message)

    def stream(self) -> Iterator[bytes]:
        """What one page reads, until it goes away or the dashboard stops."""
        page: queue.Queue[bytes] = queue.Queue(_QUEUE_SIZE)
        with self._lock:
            if self._closed:
                return
            self._pages.add(page)
        try:
            yield b"retry: 2000\n\n"  # how soon the browser reconnects, in ms
            while True:
                try:
                    message = page.get(timeout=KEEP_ALIVE_S)
                except queue.Empty:
                    message = b": keep-alive\n\n"  # and finds out whether the page is gone
                if message == _CLOSED:
                    return
                yield message
        finally:
            with self._lock:
                self._pages.discard(page)

    @property
    def pages(self) -> int:
        with self._lock:
            return len(self._pages)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pages = list(self._pages)
        for page in pages:
            with contextlib.suppress(queue.Full):
                page.put_nowait(_CLOSED)
