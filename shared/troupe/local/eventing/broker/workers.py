"""A small pool of daemon threads that start on demand, up to a maximum.

Daemon threads, unlike ThreadPoolExecutor's, never keep the process alive while a slow
subscriber holds a request: stopping the runtime leaves those events uncommitted instead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class WorkerPool:
    def __init__(self, name: str, max_workers: int) -> None:
        self._name = name
        self._max = max(1, max_workers)
        self._tasks: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers = 0
        self._idle = 0
        self._queued = 0
        self._stopped = False

    def submit(self, task: Callable[[], object]) -> None:
        with self._lock:
            if self._stopped:
                return
            self._queued += 1
            spawn = self._queued > self._idle and self._workers < self._max
            if spawn:
                self._workers += 1
                number = self._workers
        self._tasks.put(task)
        if spawn:
            threading.Thread(target=self._work, name=f"{self._name}-{number}", daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
                self._queued -= 1
            if task is None:
                return
            task()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            count = self._workers
        for _ in range(count):
            self._tasks.put(None)
