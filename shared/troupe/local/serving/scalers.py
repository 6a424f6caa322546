"""The autoscalers that decide a revision's instance count on each tick of its pool.

The default class (KPA, concurrency) needs none: the activator starts instances for the
requests it holds and the pool stops idle ones, as it always did. The other two classes
return how many instances the revision should run, and the pool starts or stops to match.

QueueingScaler, `queueing.troupe.dev`: from the load window (load.py) it takes lambda
over the stable window and the service time's mean and SCV, and runs the smallest number
of instances whose slots (containerConcurrency, else the gunicorn threads) the model
(troupe.capacity: Erlang C, Allen-Cunneen beyond it) says meet the wait SLO, within
min-scale and max-scale. Hysteresis, so that it does not flap:
- up at once to what the stable rate needs;
- a burst: when the panic window's rate needs PANIC_FACTOR times the instances running,
  or when the requests already waiting cannot be cleared within the SLO's wait by the
  instances ready (a fluid bound that counts the time new instances take to start: the
  model's setup time), up to that at once, and no scale-down for a stable window
  (Knative's panic mode);
- down only to what the stable rate needs with TOLERANCE more traffic, so that a rate
  hovering at a boundary between two counts keeps the higher one, and only to the
  highest such recommendation over `scale-down-delay`.
Until a first request has been served the service time is unknown and it scales as the
concurrency autoscaler does; with no traffic over the stable window it goes to min-scale
(zero after the retention period, as any class but HPA).

ResourceScaler, `hpa.autoscaling.knative.dev`: Kubernetes' HPA algorithm,
desired = ceil(ready x usage / target), left alone within TOLERANCE of the target, down
only to the highest recommendation over `scale-down-delay` (Kubernetes' stabilisation).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final, Protocol

from troupe.capacity import CapacityError, Workload, servers_for_slo
from troupe.local.serving.autoscaling import ScalingPolicy
from troupe.local.serving.load import LoadWindow
from troupe.local.serving.usage import UsageMeter

TOLERANCE: Final = 0.1  # Kubernetes HPA's default tolerance; the queueing class's margin
PANIC_FACTOR: Final = 2  # Knative's panic-threshold-percentage, 200


@dataclass(frozen=True)
class PoolView:
    """What a scaler may look at: the pool's instances and requests at one moment."""

    ready_pids: tuple[int, ...]
    instances: int  # ready and starting
    waiting: int
    in_flight: int
    slots: int  # requests one instance serves at once
    min_scale: int
    max_scale: int
    start_up: float = 0.0  # seconds an instance has taken to start, lately

    @property
    def ready_slots(self) -> int:
        return len(self.ready_pids) * self.slots


class Scaler(Protocol):
    def desired(self, now: float, view: PoolView) -> int: ...


class _Stabiliser:
    """The highest recommendation over the last `delay` seconds.

    A sliding maximum: a recommendation is dropped once a later one is at least as high,
    so the first entry is always the answer and each tick costs O(1) however long the delay.
    """

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._candidates: deque[tuple[float, int]] = deque()

    def decide(self, now: float, recommended: int) -> int:
        while self._candidates and self._candidates[-1][1] <= recommended:
            self._candidates.pop()
        self._candidates.append((now, recommended))
        while self._candidates[0][0] < now - self._delay:
            self._candidates.popleft()
        return self._candidates[0][1]


class QueueingScaler:
    def __init__(self, policy: ScalingPolicy, load: LoadWindow) -> None:
        assert policy.wait_slo is not None, "the queueing class needs a wait SLO"
        self._policy = policy
        self._slo = policy.wait_slo
        self._load = load
        self._stabiliser = _Stabiliser(policy.scale_down_delay)
        self._current = 0
        self._panic_until = float("-inf")

    def desired(self, now: float, view: PoolView) -> int:
        stable = self._load.rate(now, self._policy.window)
        burst = self._load.rate(now, self._policy.panic_window)
        demand = view.waiting + view.in_flight
        service = self._load.service_time(now, self._policy.window)
        if service is None or service.mean <= 0:
            # Nothing served yet: the concurrency autoscaler's answer, until it has been.
            need = down = panic = backlog = min(math.ceil(demand / view.slots), view.max_scale)
        else:
            need = self._instances(stable, service.mean, service.scv, view)
            down = self._instances(stable * (1 + TOLERANCE), service.mean, service.scv, view)
            panic = self._instances(burst, service.mean, service.scv, view)
            backlog = self._draining(view, max(stable, burst), service.mean)
            if demand:  # requests in the system always keep one instance
                need, down = max(need, 1), max(down, 1)
        if ((panic >= PANIC_FACTOR * max(self._current, 1) and panic > self._current)
                or backlog > self._current):
            # A burst the stable window has not caught up with, or a queue the instances
            # cannot clear within the SLO: answer it, and hold it for a stable window, as
            # Knative's panic mode does.
            need = max(need, panic, backlog)
            self._panic_until = now + self._policy.window
        lower = self._stabiliser.decide(now, down)
        if need > self._current:
            self._current = need
        elif now >= self._panic_until:
            self._current = min(self._current, lower)
        return self._current

    def _draining(self, view: PoolView, rate: float, service_time: float) -> int:
        """Instances that clear the requests waiting within the SLO's wait, counting the
        time new instances take to start (a fluid bound, in server-seconds).

        Over the horizon H = start-up + w, the slots ready now (c0) serve c0 x H / s
        requests and each new slot w / s after it starts, while W wait and lambda x H more
        arrive. So c >= c0 + (s (W + lambda H) - c0 H) / w; in steady state the ready
        slots already cover it and nothing is added.
        """
        if not view.waiting:
            return 0
        wait = max(self._slo.wait, service_time)  # a zero wait: clear within one service
        horizon = view.start_up + wait
        ready = view.ready_slots
        deficit = service_time * (view.waiting + rate * horizon) - ready * horizon
        if deficit <= 0:
            return 0
        return min(math.ceil((ready + deficit / wait) / view.slots), view.max_scale)

    def _instances(self, rate: float, service_time: float, scv: float, view: PoolView) -> int:
        if rate <= 0:
            return 0
        workload = Workload(rate, service_time, service_scv=scv)
        try:
            servers = servers_for_slo(workload, self._slo,
                                      max_servers=max(view.max_scale, 1) * view.slots)
        except CapacityError:  # no count within max-scale meets it: run them all
            return view.max_scale
        return math.ceil(servers / view.slots)


class ResourceScaler:
    def __init__(self, policy: ScalingPolicy, usage: UsageMeter) -> None:
        assert policy.target is not None and policy.metric in ("cpu", "memory")
        self._policy = policy
        self._usage = usage
        self._stabiliser = _Stabiliser(policy.scale_down_delay)
        self._current = 0

    def desired(self, now: float, view: PoolView) -> int:
        self._usage.read(now, list(view.ready_pids))
        readings = [self._reading(pid) for pid in view.ready_pids]
        known = [r for r in readings if r is not None]
        if not known:  # no instance ready, or too new to measure: keep the count
            self._current = max(self._current, view.instances, 1)
            return self._current
        ratio = sum(known) / len(known) / self._target()
        ready = len(view.ready_pids)
        recommended = ready if abs(ratio - 1) <= TOLERANCE else math.ceil(ready * ratio)
        if recommended > self._current:
            self._current = recommended
            self._stabiliser.decide(now, recommended)
        else:
            self._current = min(self._current, self._stabiliser.decide(now, recommended))
        return self._current

    def _reading(self, pid: int) -> float | None:
        if self._policy.metric == "cpu":
            return self._usage.cpu_cores(pid)
        return self._usage.memory_mib(pid)

    def _target(self) -> float:
        """Per instance: cores for cpu (a percentage of the request), MiB for memory."""
        assert self._policy.target is not None
        if self._policy.metric == "cpu":
            return self._policy.target / 100 * self._policy.cpu_request
        return self._policy.target


def make_scaler(policy: ScalingPolicy, load: LoadWindow) -> Scaler | None:
    from troupe.local.serving.autoscaling import HPA, QUEUEING

    if policy.autoscaler == QUEUEING:
        return QueueingScaler(policy, load)
    if policy.autoscaler == HPA:
        return ResourceScaler(policy, UsageMeter())
    return None
