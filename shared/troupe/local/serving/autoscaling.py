"""Which autoscaler a revision gets, and its settings, from Knative's annotations.

`autoscaling.knative.dev/class` picks the class, as on a cluster:

- `kpa.autoscaling.knative.dev` (the default): concurrency, as `troupe up` always did;
  the activator starts instances for the requests in flight and waiting, and an instance
  idle for the retention period stops.
- `hpa.autoscaling.knative.dev`: Kubernetes' HPA algorithm on the instances' measured CPU
  (`metric: cpu`, `target` a percentage of the container's CPU request, one core when it
  has none) or memory (`metric: memory`, `target` in MiB per instance, as Knative passes it
  to the HPA). Like Knative's HPA class it never scales to zero.
- `queueing.troupe.dev`: troupe's queue-aware autoscaler (queueing.py), which needs
  `troupe.dev/wait-slo` (e.g. "200ms@p95"). On a cluster no controller serves this class;
  there `troupe capacity plan --apply` sets the scale bounds from the same model.

The windows are Knative's annotations with Knative's defaults and bounds: `window`
(60s, 6s to 1h) and `panic-window-percentage` (10, 1 to 100); `scale-down-delay` (0s,
up to 1h) holds a scale-down for that long, and defaults to Kubernetes' 300 s
downscale stabilisation for the HPA class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from troupe.capacity import CapacityError, WaitSLO
from troupe.local.conventions import parse_go_duration
from troupe.local.errors import InvalidFieldError

KPA: Final = "kpa.autoscaling.knative.dev"
HPA: Final = "hpa.autoscaling.knative.dev"
QUEUEING: Final = "queueing.troupe.dev"
WAIT_SLO: Final = "troupe.dev/wait-slo"
_SCALE: Final = "autoscaling.knative.dev/"
_FIELD: Final = "spec.template.metadata.annotations"
_METRICS: Final = {KPA: ("concurrency", "rps"), HPA: ("cpu", "memory"), QUEUEING: ()}
_HPA_STABILISATION: Final = 300.0  # Kubernetes' --horizontal-pod-autoscaler-downscale-...


@dataclass(frozen=True)
class ScalingPolicy:
    autoscaler: str  # KPA, HPA or QUEUEING
    metric: str | None  # cpu or memory for HPA; concurrency or rps for KPA
    target: float | None  # HPA: percent of the CPU request, or MiB per instance
    window: float  # seconds: the stable window
    panic_window: float  # seconds: the short window that answers bursts
    scale_down_delay: float  # seconds a lower recommendation must last to be acted on
    wait_slo: WaitSLO | None  # the queueing class's objective (also bounds priorities)
    cpu_request: float  # cores the container requests; the HPA's 100%

    @property
    def scales_to_zero(self) -> bool:
        return self.autoscaler != HPA


def scaling_policy(annotations: Mapping[str, Any], container: Mapping[str, Any]) -> ScalingPolicy:
    """Read and check the autoscaling annotations; a bad one raises InvalidFieldError."""
    autoscaler = str(annotations.get(_SCALE + "class") or KPA)
    if autoscaler not in _METRICS:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}class]", (
            f"{autoscaler!r} has no autoscaler in troupe up: use {KPA} (concurrency), "
            f"{HPA} (cpu or memory) or {QUEUEING} (a wait SLO)"))
    metric = annotations.get(_SCALE + "metric")
    allowed = _METRICS[autoscaler]
    if autoscaler == HPA:
        metric = metric or "cpu"  # Knative's default metric for the HPA class
    if metric is not None and allowed and metric not in allowed:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}metric]", (
            f"{metric!r} is not a metric of {autoscaler}: give one of {', '.join(allowed)}"))
    target = _number(annotations, "target")
    if autoscaler == HPA and target is None:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}target]", (
            f"the {HPA} class scales towards a target: give e.g. \"80\" (percent of the CPU "
            "request) for cpu, or \"256\" (MiB per instance) for memory"))
    window = _duration(annotations, "window", default=60.0, low=6.0, high=3600.0)
    percentage = _number(annotations, "panic-window-percentage")
    if percentage is not None and not 1 <= percentage <= 100:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}panic-window-percentage]",
                              f"{percentage:g} must lie between 1 and 100")
    delay = _duration(annotations, "scale-down-delay",
                      default=_HPA_STABILISATION if autoscaler == HPA else 0.0,
                      low=0.0, high=3600.0)
    slo = _wait_slo(annotations.get(WAIT_SLO))
    if autoscaler == QUEUEING and slo is None:
        raise InvalidFieldError(f"{_FIELD}[{WAIT_SLO}]", (
            f"the {QUEUEING} class scales to meet a wait objective: give e.g. "
            f"{WAIT_SLO}: \"200ms@p95\""))
    return ScalingPolicy(
        autoscaler=autoscaler, metric=metric, target=target, window=window,
        panic_window=max(window * (percentage or 10.0) / 100, 1.0),
        scale_down_delay=delay, wait_slo=slo, cpu_request=_cpu_request(container))


def _number(annotations: Mapping[str, Any], name: str) -> float | None:
    value = annotations.get(_SCALE + name)
    if value is None:
        return None
    try:
        number = float(str(value))
    except ValueError:
        number = -1.0
    if not number > 0:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}{name}]", f"{value!r} must be a number > 0")
    return number


def _duration(annotations: Mapping[str, Any], name: str, *, default: float, low: float,
              high: float) -> float:
    value = annotations.get(_SCALE + name)
    if value is None:
        return default
    try:
        seconds = parse_go_duration(str(value))
    except ValueError as error:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}{name}]", str(error)) from None
    if not low <= seconds <= high:
        raise InvalidFieldError(f"{_FIELD}[{_SCALE}{name}]",
                              f"{value!r} must lie between {low:g}s and {high:g}s")
    return seconds


def _wait_slo(value: Any) -> WaitSLO | None:
    if value is None:
        return None
    try:
        return WaitSLO.parse(str(value))
    except CapacityError as error:
        raise InvalidFieldError(f"{_FIELD}[{WAIT_SLO}]", str(error)) from None


def _cpu_request(container: Mapping[str, Any]) -> float:
    """The container's CPU request in cores (Kubernetes quantities: "500m", "1"); 1 if none."""
    request = ((container.get("resources") or {}).get("requests") or {}).get("cpu")
    if request is None:
        return 1.0
    from kubernetes.utils import parse_quantity  # Kubernetes' own quantity grammar

    try:
        cores = float(parse_quantity(str(request)))  # type: ignore[no-untyped-call]
    except ValueError:
        cores = 0.0
    if cores <= 0:
        raise InvalidFieldError("spec.template.spec.containers[0].resources.requests.cpu",
                              f"{request!r} is not a CPU quantity such as 500m or 1")
    return cores
