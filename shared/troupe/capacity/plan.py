"""From what a Service was measured doing to what the model recommends: one plan row.

Pure arithmetic on measurements that the caller gathered (from Prometheus, for
`troupe capacity plan`): no I/O here. Where the measurements cannot support a figure
(no traffic, no instance, rho >= 1) the figure is None and a note says why, rather
than a number that means nothing.

How the recommendations follow from the model:
- servers: the fewest slots (instances x slots per instance) whose predicted wait meets
  the SLO at the measured arrival rate (`servers_for_slo`).
- containerConcurrency: kept. How many requests one instance may run at once is a
  property of the code (the trainer runs one), not something a queue can decide; the
  slots per instance are containerConcurrency, or the target when it is 0 (unlimited).
- max-scale: the instances that meet the SLO at the window's peak rate, and never fewer
  than at the mean rate.
- min-scale: 1 when the SLO cannot absorb cold starts -- when more than the SLO's
  tail (1 - quantile) of requests would meet a revision scaled to zero
  (`cold_start_probability`) and a cold start takes longer than the SLO's wait -- else 0.
- target: the concurrency per instance at which Knative's concurrency autoscaler, seeing
  L = lambda * (s + Wq) requests in the system (Little's law), runs no more than the
  recommended instances: ceil(L / instances), between 1 and the slots per instance. When
  even a target of 1 would run fewer instances than the SLO needs (waits matter long
  before the slots fill), a note says so: min-scale, or a fractional target on a cluster,
  keeps the headroom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .cold_start import cold_start_probability
from .errors import CapacityError
from .inverse import servers_for_slo
from .queue import Workload, predict_wait
from .slo import WaitSLO


@dataclass(frozen=True)
class ServiceMeasurements:
    """What was measured for one Service over a window, and how it is configured."""

    service: str
    namespace: str
    container_concurrency: int  # 0: unlimited
    target: int  # autoscaling.knative.dev/target (soft concurrency per instance)
    grace_period: float  # seconds an idle revision keeps its last instance
    arrival_rate: float | None  # requests/s over the window
    peak_arrival_rate: float | None  # the highest short-term rate within the window
    service_time: float | None  # mean seconds an instance took per request
    service_scv: float | None  # squared coefficient of variation of the service time
    instances: float | None  # instances that served the window
    measured_mean_wait: float | None
    measured_p95_wait: float | None
    cold_start_time: float | None  # mean seconds to start an instance, where measured

    @property
    def slots_per_instance(self) -> int:
        return self.container_concurrency or max(self.target, 1)


@dataclass(frozen=True)
class Recommendation:
    servers: int
    min_scale: int
    max_scale: int
    target: int
    container_concurrency: int


@dataclass(frozen=True)
class ServicePlan:
    measured: ServiceMeasurements
    slo: WaitSLO
    servers: int | None  # the current c: instances x slots per instance
    utilization: float | None
    predicted_mean_wait: float | None
    predicted_p95_wait: float | None
    recommendation: Recommendation | None
    notes: tuple[str, ...] = field(default=())


def plan_service(measured: ServiceMeasurements, slo: WaitSLO) -> ServicePlan:
    notes: list[str] = []
    rate, service_time = measured.arrival_rate, measured.service_time
    if not rate or not service_time:
        notes.append("no requests served in the window: nothing to plan from "
                     "(`troupe capacity model` answers what-if questions)")
        return ServicePlan(measured, slo, None, None, None, None, None, tuple(notes))
    workload = Workload(arrival_rate=rate, service_time=service_time,
                        service_scv=measured.service_scv if measured.service_scv is not None
                        else 1.0)
    if measured.service_scv is None:
        notes.append("service-time SCV unknown: assumed 1 (exponential)")
    k = measured.slots_per_instance
    current = math.ceil(measured.instances or 0) * k or None
    utilization = predicted_mean = predicted_p95 = None
    if current is None:
        notes.append("no instance ran in the window: the current utilisation is undefined")
    else:
        utilization = workload.offered_load / current
        try:
            prediction = predict_wait(workload, current)
        except CapacityError as error:
            notes.append(f"current capacity: {error}")
        else:
            predicted_mean, predicted_p95 = prediction.mean_wait, prediction.quantile(0.95)
    try:
        recommendation: Recommendation | None = _recommend(measured, workload, slo)
    except CapacityError as error:
        notes.append(f"no recommendation: {error}")
        recommendation = None
    if recommendation is not None:
        note = _autoscaler_note(recommendation, workload, measured)
        if note:
            notes.append(note)
    return ServicePlan(measured, slo, current, utilization, predicted_mean, predicted_p95,
                       recommendation, tuple(notes))


def _recommend(measured: ServiceMeasurements, workload: Workload,
               slo: WaitSLO) -> Recommendation:
    k = measured.slots_per_instance
    servers = servers_for_slo(workload, slo)
    instances = math.ceil(servers / k)
    peak_instances = instances
    if measured.peak_arrival_rate and measured.peak_arrival_rate > workload.arrival_rate:
        peak = Workload(measured.peak_arrival_rate, workload.service_time,
                        service_scv=workload.service_scv)
        peak_instances = math.ceil(servers_for_slo(peak, slo) / k)
    p_cold = cold_start_probability(workload, servers=servers, min_scale=0,
                                    grace_period=measured.grace_period)
    slow_start = measured.cold_start_time is None or measured.cold_start_time > slo.wait
    min_scale = 1 if p_cold > 1 - slo.quantile and slow_start else 0
    in_system = workload.arrival_rate * (
        predict_wait(workload, servers).mean_wait + workload.service_time)
    target = min(max(math.ceil(in_system / instances), 1), k)
    return Recommendation(servers=servers, min_scale=min_scale,
                          max_scale=max(peak_instances, instances, min_scale),
                          target=target, container_concurrency=measured.container_concurrency)


def _autoscaler_note(recommendation: Recommendation, workload: Workload,
                     measured: ServiceMeasurements) -> str | None:
    """Say so when the concurrency autoscaler would run fewer instances than needed."""
    k = measured.slots_per_instance
    instances = math.ceil(recommendation.servers / k)
    in_system = workload.arrival_rate * (
        predict_wait(workload, recommendation.servers).mean_wait + workload.service_time)
    runs = max(math.ceil(in_system / recommendation.target), 1)
    if runs >= instances:
        return None
    return (f"at target {recommendation.target} the concurrency autoscaler would run "
            f"{runs} instance(s) for {in_system:.2g} requests in the system, but the SLO "
            f"needs {instances}: set min-scale {instances} while this load lasts, or a "
            f"fractional target ({in_system / instances:.2g}) on a cluster")
