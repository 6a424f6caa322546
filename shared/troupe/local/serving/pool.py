"""The instances of one revision, and the activator logic in front of them.

A request asks the pool for an instance with room (`acquire`). When none has room the
request waits here, in the activator's queue (waiting.py), while the pool starts more
instances up to max-scale: nothing is lost while a revision is cold. Freed slots go to
the best-ranked waiter: by priority (priority.py), then arrival. A full buffer or a wait
past the activation timeout is answered 503, which the broker retries.

How many instances run is the autoscaler's call (autoscaling.py). With the default class
the activator starts instances for the requests it holds and an instance idle for the
retention period stops; with the others a scaler (scalers.py) names a count on each tick
and the pool starts instances, or stops idle ones, to match. Every class records arrivals
and service times in a load window (load.py), which `troupe status` reads too.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from troupe.capacity import UnstableQueueError, Workload, predict_wait
from troupe.local.errors import LocalError
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.serving.instance import Instance, LaunchSettings
from troupe.local.serving.load import LoadWindow
from troupe.local.serving.priority import NORMAL
from troupe.local.serving.revision import Revision
from troupe.local.serving.scalers import PoolView, make_scaler
from troupe.local.serving.waiting import WaitQueue

DECISIONS_KEPT = 20  # the last scale decisions, shown by `troupe status --json`
START_UPS_KEPT = 10  # the instance start-up times the queueing class plans with


class Unavailable(LocalError):
    """The activator cannot place a request; answered 503 with this message."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Readiness:
    """Whether a revision has passed its readiness probe, as its Ready condition says:
    "True" once an instance has, "False" with the reason and the last lines of its log
    when its instances failed to start, "Unknown" while one is starting."""

    status: str
    reason: str = ""
    message: str = ""


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
        # Taken out of service and still stopping: kill() must reach them too, or a stop
        # that runs out of time would leave them running after the runtime has gone.
        self._stopping: set[Instance] = set()
        self._ordinal = 0
        self._failure: tuple[float, str] | None = None
        self._failed_start = Readiness("Unknown", "Deploying")
        self.ever_ready = False
        self._closed = False
        self._lock = threading.RLock()
        self._queue = WaitQueue(self._lock)
        policy = revision.scaling
        self.load = LoadWindow(policy.window, time.monotonic())
        self._scaler = make_scaler(policy, self.load)
        # Knative's HPA class never scales to zero.
        self._floor = revision.min_scale if policy.scales_to_zero else max(revision.min_scale, 1)
        self.desired: int | None = None  # the scaler's last count; None for the default class
        self._start_ups: deque[float] = deque(maxlen=START_UPS_KEPT)  # seconds, lately
        self.decisions: deque[tuple[str, int]] = deque(maxlen=DECISIONS_KEPT)

    # -- the activator's side ---------------------------------------------------------
    def acquire(self, level: int = NORMAL) -> Instance:
        """An instance with a slot for one request of priority `level`, or Unavailable."""
        arrived = time.monotonic()
        deadline = arrived + self._activation_timeout
        with self._lock:
            self.load.arrived(arrived)
            if len(self._queue) >= self._buffer_size:
                raise Unavailable(f"{self.revision.name}: activator buffer full "
                                  f"({self._buffer_size} requests waiting)", "overflow")
            waiter = self._queue.join(level, arrived)
            self.meter.queued.inc()
            try:
                while True:
                    self._hand_out()
                    if waiter.instance is not None:
                        self.meter.queue_wait.observe(waiter.granted - arrived)
                        return waiter.instance
                    if self._closed:
                        raise Unavailable(f"{self.revision.name} was removed", "removed")
                    if self._failure and self._failure[0] >= arrived and not self._starting():
                        raise Unavailable(self._failure[1], "start-failed")
                    self._scale_for_demand()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise Unavailable(f"{self.revision.name}: no instance free after "
                                          f"{self._activation_timeout:g}s", "timeout")
                    waiter.wake.wait(remaining)
            finally:
                self._queue.leave(waiter)
                self.meter.queued.dec()

    def release(self, instance: Instance, served_seconds: float | None = None) -> None:
        """Give back a slot; `served_seconds`, how long the instance took, when it answered."""
        with self._lock:
            now = time.monotonic()
            instance.in_flight -= 1
            self.meter.active.dec()
            instance.last_used = now
            if served_seconds is not None:
                self.load.served(now, served_seconds)
            self._hand_out()

    def _hand_out(self) -> None:
        """Give every free slot to the best-ranked waiter."""
        now = time.monotonic()
        while len(self._queue):
            instance = self._least_loaded_with_room()
            if instance is None or self._queue.hand(instance, now) is None:
                return
            instance.in_flight += 1
            self.meter.active.inc()

    def _promote(self, now: float) -> None:
        """Promote waiters whose predicted wait reaches the Service's bound (waiting.py)."""
        if not self.revision.priorities.rules or not len(self._queue):
            return
        slo = self.revision.scaling.wait_slo
        service = self.load.service_time(now, self.revision.scaling.window)
        ready = sum(1 for i in self._instances if i.ready)
        self._queue.promote(now, slo.wait if slo is not None else self._activation_timeout,
                            service.mean if service is not None else None,
                            max(ready, 1) * self.revision.slots)

    @property
    def promotions(self) -> int:
        return self._queue.promotions

    def forget(self, instance: Instance) -> None:
        """An instance that stopped answering: drop it so the next request gets a fresh one."""
        with self._lock:
            if instance in self._instances:
                self._instances.remove(instance)
                self._set_gauge()
            self._stopping.add(instance)
        self._stop_in_background(instance)
        self._on_change()

    def _least_loaded_with_room(self) -> Instance | None:
        hard = self.revision.container_concurrency or math.inf
        candidates = [i for i in self._instances if i.ready and i.in_flight < hard]
        return min(candidates, key=lambda i: i.in_flight, default=None)

    def _starting(self) -> int:
        return sum(1 for i in self._instances if not i.ready)

    def _scale_for_demand(self) -> None:
        if self._scaler is not None:
            # Another class decides the count on its tick; the activator only wakes a
            # revision at zero, so that the first request need not wait for the tick.
            if not self._instances and self.revision.max_scale > 0:
                self._start_instance()
            return
        demand = len(self._queue) + sum(i.in_flight for i in self._instances)
        desired = math.ceil(demand / self.revision.target)
        desired = max(self.revision.min_scale, min(desired, self.revision.max_scale))
        while len(self._instances) < desired:
            self._start_instance()

    def _autoscale(self, now: float) -> int | None:
        """Ask the class's scaler for a count and start instances up to it."""
        if self._scaler is None:
            return None
        view = PoolView(
            ready_pids=tuple(i.pid for i in self._instances if i.ready and i.pid is not None),
            instances=len(self._instances), waiting=len(self._queue),
            in_flight=sum(i.in_flight for i in self._instances), slots=self.revision.slots,
            min_scale=self._floor, max_scale=self.revision.max_scale,
            start_up=sum(self._start_ups) / len(self._start_ups) if self._start_ups else 0.0)
        desired = max(self._floor, min(self._scaler.desired(now, view), self.revision.max_scale))
        if desired != self.desired:
            self.desired = desired
            self.decisions.append((datetime.now(UTC).isoformat(timespec="milliseconds"),
                                   desired))
        while len(self._instances) < desired and not self._failure:
            self._start_instance()
        return desired

    def _surplus(self, now: float, desired: int | None, keep_at_least: int) -> list[Instance]:
        """Idle instances to stop, longest idle first.

        The default class stops an instance idle for the retention period, down to
        min-scale. The others stop idle instances above the scaler's count at once (the
        scaler's hysteresis already waited), but the last one only after the retention
        period, as a revision scales to zero.
        """
        idle = sorted((i for i in self._instances if i.ready and i.in_flight == 0),
                      key=lambda i: i.last_used)
        keep = max(keep_at_least, self.revision.min_scale if desired is None else desired)
        surplus, remaining = [], len(self._instances)
        for instance in idle:
            if remaining <= keep:
                break
            rested = now - instance.last_used >= self._grace
            if rested if desired is None else (remaining > 1 or rested):
                surplus.append(instance)
                remaining -= 1
        return surplus

    # -- the autoscaler's side ----------------------------------------------------------
    def start_initial(self) -> None:
        """Start a new revision at its initial scale, as Knative does, so that it is
        probed (and ready, or failed) before traffic moves to it."""
        with self._lock:
            while len(self._instances) < max(self.revision.initial_scale,
                                              self.revision.min_scale):
                self._start_instance()

    def readiness(self) -> Readiness:
        with self._lock:
            if self.ever_ready:
                return Readiness("True")
            if self._failure is not None and not self._starting():
                return self._failed_start
            return Readiness("Unknown", "Deploying", "an instance is starting")

    def replicas(self) -> tuple[int, int]:
        """(ready instances, instances wanted): a Revision's actual and desired replicas."""
        with self._lock:
            return sum(1 for i in self._instances if i.ready), len(self._instances)

    def _start_instance(self) -> None:
        self._ordinal += 1
        instance = Instance(self.revision, self._launch, self._ordinal)
        self._instances.append(instance)
        threading.Thread(target=self._boot, args=(instance,), name=f"boot-{instance.name}",
                         daemon=True).start()

    def _boot(self, instance: Instance) -> None:
        reason = "StartFailed"
        try:
            instance.start()
            ok = instance.wait_ready()
        except OSError as error:
            ok = False
            instance.ready = False
            problem = str(error)
        else:
            problem = instance.log_tail()
            code = instance.exit_code
            reason = f"ExitCode{code}" if code is not None else "ProgressDeadlineExceeded"
        elapsed = time.monotonic() - instance.started_at
        labels = (self.revision.service, self.revision.name)
        with self._lock:
            if ok and not self._closed:
                self._start_ups.append(elapsed)
                self.ever_ready = True
                self._metrics.cold_starts.labels(*labels).inc()
                self._metrics.cold_start_seconds.labels(self.revision.service).observe(elapsed)
                instance.last_used = time.monotonic()
            else:
                if instance in self._instances:
                    self._instances.remove(instance)
                if not self._closed:
                    self._failure = (time.monotonic(), f"{self.revision.name} failed to start "
                                     f"(functions/{self.revision.image}): {problem}")
                    self._failed_start = Readiness("False", reason, "Container failed with: "
                                                   + (problem or "no output"))
            self._set_gauge()
            self._hand_out()
            self._queue.wake_all()  # those that waited for it to start, should it fail
        if not ok or self._closed:
            self._stop(instance)
        self._on_change()

    def tick(self) -> None:
        """Drop crashed instances, follow the autoscaler, stop the surplus, keep min-scale."""
        now = time.monotonic()
        stopped: list[Instance] = []
        with self._lock:
            if self._closed:
                return
            for instance in list(self._instances):
                if instance.ready and not instance.alive():  # crashed
                    self._instances.remove(instance)
                    stopped.append(instance)
            self._promote(now)
            desired = self._autoscale(now)
            for instance in self._surplus(now, desired, self._floor):
                self._instances.remove(instance)
                stopped.append(instance)
            if len(self._instances) < self._floor and not self._failure:
                while len(self._instances) < self._floor:
                    self._start_instance()
            if stopped:
                self._set_gauge()
            self._stopping.update(stopped)
        for instance in stopped:
            self._stop_in_background(instance)
        if stopped:
            self._on_change()

    def _stop(self, instance: Instance) -> None:
        """Stop an instance already out of service, where kill() still finds it."""
        with self._lock:
            self._stopping.add(instance)
        try:
            instance.stop()
        finally:
            with self._lock:
                self._stopping.discard(instance)

    def _stop_in_background(self, instance: Instance) -> None:
        threading.Thread(target=self._stop, args=(instance,), name=f"stop-{instance.name}",
                         daemon=True).start()

    def has_processes(self) -> bool:
        with self._lock:
            return bool(self._instances or self._stopping)

    def kill(self) -> None:
        """SIGKILL every instance, those still stopping included: for a stop that ran out
        of time."""
        with self._lock:
            instances = [*self._instances, *self._stopping]
        for instance in instances:
            instance.kill()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            instances, self._instances = self._instances, []
            self._stopping.update(instances)
            self._set_gauge()
            self._queue.wake_all()
        stoppers = [threading.Thread(target=self._stop, args=(i,), daemon=True)
                    for i in instances]
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
    def queueing_summary(self) -> dict[str, float | int | None]:
        """lambda, s and rho over the stable window, and the model's p95 wait (status).

        rho and the wait are None when no instance runs (a cold revision has no servers),
        and the wait is None at rho >= 1, where the model has no answer.
        """
        now = time.monotonic()
        with self._lock:
            window = self.revision.scaling.window
            rate = self.load.rate(now, window)
            service = self.load.service_time(now, window)
            servers = sum(1 for i in self._instances if i.ready) * self.revision.slots
        summary: dict[str, float | int | None] = {
            "arrival_rate": rate, "service_time_s": service.mean if service else None,
            "service_scv": service.scv if service else None, "servers": servers,
            "utilization": None, "predicted_p95_wait_s": None}
        if rate == 0:
            summary.update(utilization=0.0, predicted_p95_wait_s=0.0)
        elif service is not None and service.mean > 0 and servers:
            workload = Workload(rate, service.mean, service_scv=service.scv)
            summary["utilization"] = workload.offered_load / servers
            with contextlib.suppress(UnstableQueueError):
                summary["predicted_p95_wait_s"] = predict_wait(workload, servers).quantile(0.95)
        return summary

    def instances(self) -> list[Instance]:
        with self._lock:
            return [i for i in self._instances if i.ready]
