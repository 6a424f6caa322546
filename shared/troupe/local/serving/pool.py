"""The instances of one revision, and the activator logic in front of them.

A request asks the pool for an instance with room (`acquire`). When none has room the
request waits here, in the activator's buffer, while the pool starts more instances up to
max-scale: nothing is lost while a revision is cold. A full buffer or a wait past the
activation timeout is answered 503, which the broker retries.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from troupe.local.errors import LocalError
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.serving.instance import Instance, LaunchSettings
from troupe.local.serving.revision import Revision


class Unavailable(LocalError):
    """The activator cannot place a request; answered 503 with this message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RevisionPool:
    def __init__(self, revision: Revision, launch: LaunchSettings, metrics: RuntimeMetrics,
                 *, grace_period: float, buffer_size: int, activation_timeout: float,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.revision = revision
        self._launch = launch
        self._metrics = metrics
        self.meter = metrics.revision_meter(revision.namespace, revision.service, revision.name)
        self._grace = revision.retention_seconds if revision.retention_seconds is not None \
            else grace_period
        self._buffer_size = buffer_size
        self._activation_timeout = activation_timeout
        self._on_change = on_change
        self._instances: list[Instance] = []
        self._waiting = 0
        self._ordinal = 0
        self._failure: tuple[float, str] | None = None
        self._closed = False
        self._cond = threading.Condition()

    # -- the activator's side ---------------------------------------------------------
    def acquire(self) -> Instance:
        arrived = time.monotonic()
        deadline = arrived + self._activation_timeout
        with self._cond:
            if self._waiting >= self._buffer_size:
                raise Unavailable(f"{self.revision.name}: activator buffer full "
                                  f"({self._buffer_size} requests waiting)", "overflow")
            self._waiting += 1
            self.meter.queued.inc()
            try:
                while True:
                    if self._closed:
                        raise Unavailable(f"{self.revision.name} was removed", "removed")
                    instance = self._least_loaded_with_room()
                    if instance is not None:
                        instance.in_flight += 1
                        self.meter.active.inc()
                        self.meter.queue_wait.observe(time.monotonic() - arrived)
                        return instance
                    if self._failure and self._failure[0] >= arrived and not self._starting():
                        raise Unavailable(self._failure[1], "start-failed")
                    self._scale_for_demand()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Unavailable(f"{self.revision.name}: no instance free after "
                                          f"{self._activation_timeout:g}s", "timeout")
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
                self.meter.queued.dec()

    def release(self, instance: Instance) -> None:
        with self._cond:
            instance.in_flight -= 1
            self.meter.active.dec()
            instance.last_used = time.monotonic()
            self._cond.notify_all()

    def forget(self, instance: Instance) -> None:
        """An instance that stopped answering: drop it so the next request gets a fresh one."""
        with self._cond:
            if instance in self._instances:
                self._instances.remove(instance)
                self._set_gauge()
        instance.stop_in_background()
        self._on_change()

    def _least_loaded_with_room(self) -> Instance | None:
        hard = self.revision.container_concurrency or math.inf
        candidates = [i for i in self._instances if i.ready and i.in_flight < hard]
        return min(candidates, key=lambda i: i.in_flight, default=None)

    def _starting(self) -> int:
        return sum(1 for i in self._instances if not i.ready)

    def _scale_for_demand(self) -> None:
        demand = self._waiting + sum(i.in_flight for i in self._instances)
        desired = math.ceil(demand / self.revision.target)
        desired = max(self.revision.min_scale, min(desired, self.revision.max_scale))
        while len(self._instances) < desired:
            self._start_instance()

    # -- the autoscaler's side ----------------------------------------------------------
    def _start_instance(self) -> None:
        self._ordinal += 1
        instance = Instance(self.revision, self._launch, self._ordinal)
        self._instances.append(instance)
        threading.Thread(target=self._boot, args=(instance,), name=f"boot-{instance.name}",
                         daemon=True).start()

    def _boot(self, instance: Instance) -> None:
        try:
            instance.start()
            ok = instance.wait_ready()
        except OSError as error:
            ok = False
            instance.ready = False
            problem = str(error)
        else:
            problem = instance.log_tail()
        elapsed = time.monotonic() - instance.started_at
        labels = (self.revision.service, self.revision.name)
        with self._cond:
            if ok and not self._closed:
                self._failure = None  # a start that works ends the last failure
                self._metrics.cold_starts.labels(*labels).inc()
                self._metrics.cold_start_seconds.labels(self.revision.service).observe(elapsed)
                instance.last_used = time.monotonic()
            else:
                if instance in self._instances:
                    self._instances.remove(instance)
                if not self._closed:
                    self._failure = (time.monotonic(), f"{self.revision.name} failed to start "
                                     f"(functions/{self.revision.image}): {problem}")
            self._set_gauge()
            self._cond.notify_all()
        if not ok or self._closed:
            instance.stop()
        self._on_change()

    def tick(self) -> None:
        """Reap idle instances past the grace period, replace crashed ones, keep min-scale."""
        now = time.monotonic()
        stopped: list[Instance] = []
        with self._cond:
            if self._closed:
                return
            for instance in list(self._instances):
                crashed = instance.ready and not instance.alive()
                idle = (instance.ready and instance.in_flight == 0
                        and now - instance.last_used >= self._grace
                        and len(self._instances) - len(stopped) > self.revision.min_scale)
                if crashed or idle:
                    self._instances.remove(instance)
                    stopped.append(instance)
            if len(self._instances) < self.revision.min_scale and not self._failure:
                self._scale_for_demand()
            if stopped:
                self._set_gauge()
        for instance in stopped:
            instance.stop_in_background()
        if stopped:
            self._on_change()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            instances, self._instances = self._instances, []
            self._set_gauge()
            self._cond.notify_all()
        stoppers = [threading.Thread(target=i.stop, daemon=True) for i in instances]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()

    def _set_gauge(self) -> None:
        running = sum(1 for i in self._instances if i.ready)
        self._metrics.active_instances.labels(self.revision.service,
                                              self.revision.name).set(running)
        self.meter.pods.set(running)

    # -- what status and Prometheus read --------------------------------------------------
    def instances(self) -> list[Instance]:
        with self._cond:
            return [i for i in self._instances if i.ready]

    @property
    def start_failure(self) -> str | None:
        """Why the last instance failed to start (its log's tail), until one starts."""
        with self._cond:
            return self._failure[1] if self._failure else None
