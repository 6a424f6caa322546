"""The data plane's one asyncio loop: ingress, hand-over on acknowledgement, first attempts.

Every event crosses the ingress, Kafka's acknowledgement and a first delivery attempt.
With a loop (and a thread) for each, the threads queued for the GIL after nearly every
socket call: about two context switches per event, with the data plane at 80% of a core
and still the slowest part. On one loop, that work runs back to back on one thread, and
the producer's network thread only wakes it once per batch of acknowledgements.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

_T = TypeVar("_T")
_STOP_TIMEOUT_S: Final = 10.0


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LoopThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # already stopping
                self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(_STOP_TIMEOUT_S)
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and not self.loop.is_closed()

    def in_loop(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.get_ident() == self._thread.ident

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run `callback(*args)` on the loop, from any thread; dropped once it has stopped."""
        if self.in_loop():
            self.loop.call_soon(callback, *args)
            return
        with contextlib.suppress(RuntimeError):  # closed: nobody is left to run it
            self.loop.call_soon_threadsafe(callback, *args)

    def run(self, coroutine: Coroutine[Any, Any, _T], timeout: float = _STOP_TIMEOUT_S) -> _T:
        """Run `coroutine` on the loop and wait for its result (never from the loop itself)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
