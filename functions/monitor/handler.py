"""monitor: watches the serving metrics in Prometheus and says when a model version degrades.

On each PingSource tick it judges every model version it sees:

- **Against the version's own reference**, with a false-alarm budget: a concept alarm
  from a CUSUM on labelled errors against the evaluator's held-out accuracy, and a
  feature alarm from chi-squared tests of input bins against the trainer's reference
  distributions (troupe.ml.detectors; fed by monitor_detection.py). An alarm becomes
  `metric-degraded` with `kind` concept or covariate, the test and its statistic.
- **Against fixed thresholds** where no reference exists (a version troupe did not train
  and evaluate): accuracy below, or the highest PSI above, a threshold over the window on
  N consecutive ticks (hysteresis); a healthy reading resets the count, a tick with too
  little data leaves it alone. p95 latency is always judged this way (`kind: latency`).

After a degradation that version is quiet for a cooldown: one degradation calls for one
remedy, and a drift usually breaks several signals at once. A covariate alarm quiets
only further covariate alarms, so that a concept alarm behind it still gets through.

On `model-deployed` it records the deployment (the policy reads that history) and, for a
canary, which version is the candidate and which the champion. Each tick counts the
labelled predictions of both and judges the canary by a non-inferiority test
(troupe.ml.canary): `canary-passed` to promote, `rollback-requested` to withdraw it, each
with the estimate, its interval and the sample sizes.

State lives in the store at `monitor/<model>.json`, changed only with update_json, and
each decision is recorded under its event's (source, id): a redelivered tick gets the
same answer and never counts twice. At most one event is sent per tick; other pending
firings go out on the next ticks.

Cooldowns and deployment times go by the monitor's own clock, when it received the event;
an event dated more than TROUPE_MAX_CLOCK_SKEW_SECONDS in the future is refused (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from monitor_detection import (
    COUNTERS,
    canary_decision,
    count_canary,
    counter_deltas,
    degradation,
    load_version_tests,
    step_version,
)
from monitor_queries import (
    DURATION,
    PrometheusQueryError,
    PrometheusUnavailableError,
    ServingMetricsQuery,
    VersionMetrics,
)
from troupe.events import METRIC_DEGRADED, MODEL_DEPLOYED, MODELVERSION, PING
from troupe.function import Context, PermanentError, SettingsError, TemporaryError, data_object
from troupe.function.clock import DEFAULT_MAX_CLOCK_SKEW_SECONDS, received_time
from troupe.ml.canary import CanarySettings
from troupe.ml.detectors import DetectorSettings
from troupe.ml.reference import expected_accuracy

STATE_PREFIX: Final = "monitor"
_REMEMBERED_DECISIONS: Final = 200
_REMEMBERED_DEPLOYMENTS: Final = 50
_REMEMBERED_VERSIONS: Final = 20
# Firing order when several metrics are due on one tick: wrong answers first.
_METRICS: Final = ("accuracy", "latency_p95", "psi")
_KIND_OF_METRIC: Final = {"accuracy": "concept", "latency_p95": "latency", "psi": "covariate"}


@dataclass(frozen=True)
class MonitorSettings(DetectorSettings, CanarySettings):
    """The detector (TROUPE_CONCEPT_*, TROUPE_FEATURE_*) and canary (TROUPE_CANARY_*)
    settings, and the fixed thresholds for versions without a reference."""

    # Empty: monitoring is unavailable (no Prometheus); ticks are acknowledged and logged.
    prometheus_url: str = ""
    model_name: str = "default"
    monitor_window: str = "5m"
    accuracy_threshold: float = 0.8  # degraded below
    latency_p95_threshold: float = 0.5  # seconds; degraded above
    psi_threshold: float = 0.25  # degraded above (0.25 is the usual "significant shift")
    monitor_min_feedback: int = 20  # labeled predictions in the window before accuracy counts
    monitor_min_predictions: int = 20  # predictions in the window before latency counts
    monitor_breaches: int = 3  # consecutive breaching ticks before metric-degraded
    monitor_cooldown_seconds: float = 600.0
    prometheus_timeout: float = 5.0
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS  # event time ahead of ours

    def __post_init__(self) -> None:
        DetectorSettings.__post_init__(self)
        CanarySettings.__post_init__(self)
        if not DURATION.match(self.monitor_window):
            raise SettingsError(
                f"TROUPE_MONITOR_WINDOW={self.monitor_window!r} is not a Prometheus "
                "duration (e.g. 5m, 1h)"
            )
        if self.monitor_breaches < 1:
            raise SettingsError(
                f"TROUPE_MONITOR_BREACHES={self.monitor_breaches} must be at least 1"
            )


def state_key(model: str) -> str:
    return f"{STATE_PREFIX}/{model}.json"


# The model the predictor serves now: the last one deployed, since an approved model of
# another name can take the predictor over (see the deployer's TROUPE_DEPLOY_MODELS).
SERVED_KEY: Final = f"{STATE_PREFIX}/served.json"


def served_model(ctx: Context[MonitorSettings]) -> str:
    return str(ctx.store.read_json(SERVED_KEY, default={}).get("model")
               or ctx.settings.model_name)


CONSUMES: Final = (MODEL_DEPLOYED, PING)


def handle(event: CloudEvent, ctx: Context[MonitorSettings]) -> CloudEvent | None:
    if event.get_type() not in (MODEL_DEPLOYED, PING):
        raise PermanentError(
            f"the monitor consumes {PING} and {MODEL_DEPLOYED}, not {event.get_type()}: "
            "check the Trigger's filter"
        )
    now = received_time(ctx, max_skew_seconds=ctx.settings.max_clock_skew_seconds)
    if event.get_type() == MODEL_DEPLOYED:
        record_deployment(event, ctx, now)
        return None
    return check_serving_metrics(event, ctx, now)


def _event_key(event: CloudEvent) -> str:
    return f"{event.get_source()}|{event.get_id()}"


# -- model-deployed ----------------------------------------------------------------------
def _version_of(entry: dict[str, Any]) -> str | None:
    if entry.get("version"):
        return str(entry["version"])
    revision = str(entry.get("revision") or "")
    return revision.removeprefix("predictor-") if revision.startswith("predictor-") else None


def record_deployment(event: CloudEvent, ctx: Context[MonitorSettings], now: float) -> None:
    data = data_object(event)
    traffic = [entry for entry in data.get("traffic", []) if isinstance(entry, dict)]
    by_tag = {entry.get("tag"): entry for entry in traffic if entry.get("percent", 0) > 0}
    canary = None
    if data.get("strategy") == "canary":
        champion = by_tag.get("champion") or next(
            (e for e in traffic if e.get("percent", 0) > 0 and _version_of(e) != data["version"]),
            None,
        )
        expected = expected_accuracy(ctx.store, data["model"], data["version"])
        canary = {
            "candidate": data["version"],
            "champion": _version_of(champion) if champion else None,
            "since": now,
            # Plans the feedback each side needs; unknown, 0.5 plans for the most.
            "expected_accuracy": expected.accuracy if expected is not None else None,
            "counts": {},
            "decided": None,
        }
    deployment = {
        "version": data["version"],
        "revision": data.get("revision"),
        "strategy": data.get("strategy"),
        "time": now,
        "event": _event_key(event),
    }

    def change(state: dict[str, Any]) -> dict[str, Any]:
        deployments = list(state.get("deployments", []))
        if any(d.get("event") == deployment["event"] for d in deployments):
            return state  # redelivered
        deployments.append(deployment)
        return {**state, "deployments": deployments[-_REMEMBERED_DEPLOYMENTS:], "canary": canary}

    ctx.store.update_json(state_key(data["model"]), change, default={})
    ctx.store.update_json(SERVED_KEY, lambda old: {"model": data["model"]}, default={})
    ctx.logger.info(
        "recorded deployment of %s %s (%s)", data["model"], data["version"], data.get("strategy")
    )


# -- ticks -------------------------------------------------------------------------------
def check_serving_metrics(
    event: CloudEvent, ctx: Context[MonitorSettings], now: float
) -> CloudEvent | None:
    settings = ctx.settings
    if not settings.prometheus_url:
        ctx.logger.warning(
            "monitoring is unavailable: TROUPE_PROMETHEUS_URL is not set, so no metric is "
            "checked (install prometheus, or point the setting at one)"
        )
        return None
    model, event_key = served_model(ctx), _event_key(event)
    key = state_key(model)
    before = ctx.store.read_json(key, default={})
    if event_key in before.get("decisions", {}):
        return _reply(before["decisions"][event_key], ctx)
    query = ServingMetricsQuery(settings.prometheus_url, timeout=settings.prometheus_timeout)
    try:
        seen = query.per_version(model, settings.monitor_window)
        counters = query.counters(model, COUNTERS)
    except PrometheusUnavailableError as error:
        raise TemporaryError(f"{error}; the tick will be retried", delay=10.0) from None
    except PrometheusQueryError as error:
        raise PermanentError(str(error)) from None
    versions = {c.labels["model_version"] for c in counters if c.labels.get("model_version")}
    # A version's references are read from the store once, outside the state's update.
    known = before.get("detectors", {})
    loaded = {v: load_version_tests(ctx.store, model, v, settings)
              for v in sorted(versions) if v not in known}

    def change(state: dict[str, Any]) -> dict[str, Any]:
        recorded = dict(state.get("decisions", {}))
        if event_key in recorded:
            return state
        detectors = {**loaded, **json_copy(state.get("detectors", {}))}
        remembered, counts = counter_deltas(state.get("counters", {}), counters)
        state = {**state, "breaches": dict(state.get("breaches", {})),
                 "cooldown_until": dict(state.get("cooldown_until", {})),
                 "pending": list(state.get("pending", [])), "counters": remembered,
                 "canary": json_copy(state.get("canary"))}
        for version, tally in sorted(counts.items()):
            if version not in detectors:
                continue
            for alarm in step_version(detectors[version], tally):
                _queue(state, degradation(alarm, model, version,
                                          int(detectors[version]["labelled"])), now, settings)
        state["detectors"] = dict(list(detectors.items())[-_REMEMBERED_VERSIONS:])
        referenced = {v for v, tests in detectors.items() if tests.get("concept")}
        featured = {v for v, tests in detectors.items() if tests.get("features")}
        readings = _readings(seen, settings, referenced, featured)
        decision = _next_pending(state, "concept", now, settings)
        threshold = _apply_readings(state, readings, now, model, settings,
                                    may_fire=decision is None)
        decision = decision or threshold or _next_pending(state, "covariate", now, settings)
        if state["canary"] is not None:
            count_canary(state["canary"], counts)
            if decision is None:
                decision = canary_decision(state["canary"], now, settings, model)
        recorded[event_key] = decision
        state["decisions"] = dict(list(recorded.items())[-_REMEMBERED_DECISIONS:])
        return state

    state = ctx.store.update_json(key, change, default={})
    if not seen and not counters:
        ctx.logger.info("no data in the last %s to judge %s", settings.monitor_window, model)
    return _reply(state["decisions"][event_key], ctx)


def json_copy(value: Any) -> Any:
    """A deep copy of plain JSON data, so that `change` never edits what it was given."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def _quiet(state: dict[str, Any], version: str, kind: str, now: float) -> bool:
    cooldown = state["cooldown_until"]
    if now < cooldown.get(version, 0.0):
        return True
    return kind == "covariate" and now < cooldown.get(f"{version}/covariate", 0.0)


def _cool_down(state: dict[str, Any], version: str, kind: str, now: float,
               settings: MonitorSettings) -> None:
    # A covariate alarm only quiets covariate alarms: a concept alarm must still pass.
    key = f"{version}/covariate" if kind == "covariate" else version
    state["cooldown_until"][key] = now + settings.monitor_cooldown_seconds


def _queue(state: dict[str, Any], data: dict[str, Any], now: float,
           settings: MonitorSettings) -> None:
    """Keep a statistical alarm until a tick can send it; one inside the cooldown is
    dropped (the test starts afresh and fires again if the drift lasts)."""
    if not _quiet(state, data["version"], data["kind"], now):
        state["pending"].append({"type": METRIC_DEGRADED, "data": data})


def _next_pending(state: dict[str, Any], kind: str, now: float,
                  settings: MonitorSettings) -> dict[str, Any] | None:
    """The oldest pending alarm of `kind` that may go now (taken off the queue)."""
    chosen, kept = None, []
    for decision in state["pending"]:
        data = decision["data"]
        if chosen is not None or data["kind"] != kind:
            kept.append(decision)
        elif not _quiet(state, data["version"], kind, now):  # else: another went first
            chosen = decision
            _cool_down(state, data["version"], kind, now, settings)
    state["pending"] = kept
    return chosen


@dataclass(frozen=True)
class Reading:
    version: str
    metric: str
    value: float
    threshold: float
    breached: bool
    detail: dict[str, Any]


def _readings(seen: dict[str, VersionMetrics], settings: MonitorSettings,
              referenced: set[str], featured: set[str]) -> list[Reading]:
    """One reading per (version, metric) that had enough data to be judged. Accuracy and
    PSI are read only for versions without a reference to test against."""
    readings = []
    for version, metrics in seen.items():
        accuracy = metrics.accuracy
        if (accuracy is not None and metrics.labeled >= settings.monitor_min_feedback
                and version not in referenced):
            readings.append(Reading(version, "accuracy", accuracy, settings.accuracy_threshold,
                                    accuracy < settings.accuracy_threshold,
                                    {"samples": round(metrics.labeled)}))
        enough_predictions = metrics.predictions >= settings.monitor_min_predictions
        if metrics.latency_p95 is not None and enough_predictions:
            readings.append(Reading(version, "latency_p95", metrics.latency_p95,
                                    settings.latency_p95_threshold,
                                    metrics.latency_p95 > settings.latency_p95_threshold,
                                    {"samples": round(metrics.predictions)}))
        if metrics.max_psi is not None and version not in featured:
            readings.append(Reading(version, "psi", metrics.max_psi, settings.psi_threshold,
                                    metrics.max_psi > settings.psi_threshold,
                                    {"feature": metrics.psi_feature or "unknown"}))
    order = {metric: index for index, metric in enumerate(_METRICS)}
    return sorted(readings, key=lambda r: (order[r.metric], r.version))


def _apply_readings(
    state: dict[str, Any], readings: list[Reading], now: float, model: str,
    settings: MonitorSettings, *, may_fire: bool = True,
) -> dict[str, Any] | None:
    """Count breaches into `state` and return the degradation due now, if any (none when
    another event already takes this tick: the breach count keeps it for the next)."""
    breaches: dict[str, int] = state["breaches"]
    due = None
    for reading in readings:
        key = f"{reading.version}/{reading.metric}"
        kind = _KIND_OF_METRIC[reading.metric]
        breaches[key] = breaches.get(key, 0) + 1 if reading.breached else 0
        if (may_fire and due is None and breaches[key] >= settings.monitor_breaches
                and not _quiet(state, reading.version, kind, now)):
            due = {
                "type": METRIC_DEGRADED,
                "data": {
                    "model": model,
                    "version": reading.version,
                    "kind": kind,
                    "test": "threshold",
                    "metric": reading.metric,
                    "value": reading.value,
                    "threshold": reading.threshold,
                    "window": settings.monitor_window,
                    "breaches": breaches[key],
                    **reading.detail,
                },
            }
            breaches[key] = 0
            _cool_down(state, reading.version, kind, now, settings)
    return due


def _reply(decision: dict[str, Any] | None, ctx: Context[MonitorSettings]) -> CloudEvent | None:
    if decision is None:
        return None
    data = decision["data"]
    ctx.logger.info("%s: %s", decision["type"], data)
    return ctx.reply(decision["type"], data, extensions={MODELVERSION: data["version"]})
