"""The CPU and memory that each instance uses, for the HPA class: what metrics-server is
to a cluster's Horizontal Pod Autoscaler.

An instance is a gunicorn master and its worker (one process, when forked from the
template), in a session of their own; its usage is the sum over that process tree, read
from /proc through psutil (which knows its field layouts and clock ticks). CPU is a rate
over the last CPU_SPAN seconds; memory is the resident set now. metrics-server on a
cluster resolves about 15 s; locally a few seconds, so that a burst of a minute shows the
class at work. Resident sets of forked processes
share pages, so the sum overstates memory a little, as a container's RSS would too.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import psutil

SAMPLE_EVERY: Final = 0.5  # seconds between readings of /proc
CPU_SPAN: Final = 3.0  # seconds over which CPU use is averaged


class _Tree:
    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.cpu: deque[tuple[float, float]] = deque()  # (when, CPU seconds so far)
        self.rss = 0.0  # bytes

    def read(self, now: float) -> None:
        processes = [self.root, *self.root.children(recursive=True)]
        cpu, rss = 0.0, 0
        for process in processes:
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    cpu += times.user + times.system
                    rss += process.memory_info().rss
            except psutil.NoSuchProcess:
                continue  # a worker that exited between listing and reading
        self.cpu.append((now, cpu))
        while len(self.cpu) > 2 and self.cpu[1][0] <= now - CPU_SPAN:
            self.cpu.popleft()
        self.rss = float(rss)


class UsageMeter:
    """Per instance (by pid): CPU cores used, and resident MiB. Not thread-safe."""

    def __init__(self) -> None:
        self._trees: dict[int, _Tree] = {}
        self._last_read = float("-inf")

    def read(self, now: float, pids: list[int]) -> None:
        """Read every instance, at most every SAMPLE_EVERY seconds; forget stopped ones."""
        if now - self._last_read < SAMPLE_EVERY:
            return
        self._last_read = now
        for pid in set(self._trees) - set(pids):
            del self._trees[pid]
        for pid in pids:
            try:
                tree = self._trees.get(pid) or self._trees.setdefault(pid, _Tree(pid))
                tree.read(now)
            except psutil.Error:
                self._trees.pop(pid, None)  # gone: the pool replaces crashed instances

    def cpu_cores(self, pid: int) -> float | None:
        """CPU seconds per second over the last span; None until two readings exist."""
        tree = self._trees.get(pid)
        if tree is None or len(tree.cpu) < 2:
            return None
        (first_time, first_cpu), (last_time, last_cpu) = tree.cpu[0], tree.cpu[-1]
        return (last_cpu - first_cpu) / (last_time - first_time) if last_time > first_time \
            else None

    def memory_mib(self, pid: int) -> float | None:
        tree = self._trees.get(pid)
        return tree.rss / 2**20 if tree is not None and tree.cpu else None
