"""monitor: watches the serving metrics in Prometheus and says when a model version degrades.

On each PingSource tick it reads, per model version over a window, the accuracy of the
predictions that got feedback, the p95 latency and the highest feature PSI. A metric must
breach its threshold on N consecutive ticks before `metric-degraded` is sent (hysteresis),
and then that version is quiet for a cooldown, whichever metric breached: one
degradation calls for one remedy, and a drift usually breaks several metrics at once
(accuracy and PSI), which must not ask for two retrainings. A healthy reading resets the
count; a tick with too little data leaves it alone.

On `model-deployed` it records the deployment (the policy reads that history) and, for a
canary, which version is the candidate and which the champion; once both have enough
feedback and the candidate is at least as accurate as the champion (minus a tolerance),
it sends `canary-passed`.

State lives in the store at `monitor/<model>.json`, changed only with update_json, and
each decision is recorded under its event's (source, id): a redelivered tick gets the
same answer and never counts as a second breach. At most one event is sent per tick;
other pending firings go out on the next ticks.

Cooldowns and deployment times go by the monitor's own clock, when it received the event;
an event dated more than TROUPE_MAX_CLOCK_SKEW_SECONDS in the future is refused (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from monitor_queries import (
    DURATION,
    PrometheusQueryError,
    PrometheusUnavailableError,
    ServingMetricsQuery,
    VersionMetrics,
)
from troupe.events import CANARY_PASSED, METRIC_DEGRADED, MODEL_DEPLOYED, MODELVERSION, PING
from troupe.function.clock import DEFAULT_MAX_CLOCK_SKEW_SECONDS, received_time
from troupe.function.context import Context
from troupe.function.errors import PermanentError, TemporaryError
from troupe.function.settings import Settings, SettingsError

STATE_PREFIX: Final = "monitor"
_REMEMBERED_DECISIONS: Final = 200
_REMEMBERED_DEPLOYMENTS: Final = 50
# Firing order when several metrics are due on one tick: wrong answers first.
_METRICS: Final = ("accuracy", "latency_p95", "psi")


@dataclass(frozen=True)
class MonitorSettings(Settings):
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
    canary_min_feedback: int = 50  # labeled predictions per side before judging a canary
    canary_tolerance: float = 0.02  # candidate accuracy may trail the champion by this much
    prometheus_timeout: float = 5.0
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS  # event time ahead of ours

    def __post_init__(self) -> None:
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
    data = event.get_data()
    if not isinstance(data, dict):  # the app factory validated it against the schema
        raise PermanentError("model-deployed carries no JSON object; see its schema")
    traffic = [entry for entry in data.get("traffic", []) if isinstance(entry, dict)]
    by_tag = {entry.get("tag"): entry for entry in traffic if entry.get("percent", 0) > 0}
    canary = None
    if data.get("strategy") == "canary":
        champion = by_tag.get("champion") or next(
            (e for e in traffic if e.get("percent", 0) > 0 and _version_of(e) != data["version"]),
            None,
        )
        canary = {
            "candidate": data["version"],
            "champion": _version_of(champion) if champion else None,
            "since": now,
            "passed": False,
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
    key, event_key = state_key(settings.model_name), _event_key(event)
    decisions = ctx.store.read_json(key, default={}).get("decisions", {})
    if event_key in decisions:
        return _reply(decisions[event_key], ctx)
    query = ServingMetricsQuery(settings.prometheus_url, timeout=settings.prometheus_timeout)
    try:
        seen = query.per_version(settings.model_name, settings.monitor_window)
    except PrometheusUnavailableError as error:
        raise TemporaryError(f"{error}; the tick will be retried", delay=10.0) from None
    except PrometheusQueryError as error:
        raise PermanentError(str(error)) from None
    readings = _readings(seen, settings)

    def change(state: dict[str, Any]) -> dict[str, Any]:
        recorded = dict(state.get("decisions", {}))
        if event_key in recorded:
            return state
        state = {**state, "breaches": dict(state.get("breaches", {})),
                 "cooldown_until": dict(state.get("cooldown_until", {}))}
        decision = _apply_readings(state, readings, now, settings)
        if decision is None:
            decision = _judge_canary(state, seen, settings)
        recorded[event_key] = decision
        state["decisions"] = dict(list(recorded.items())[-_REMEMBERED_DECISIONS:])
        return state

    state = ctx.store.update_json(key, change, default={})
    if not readings:
        ctx.logger.info("not enough data in the last %s to judge %s", settings.monitor_window,
                        settings.model_name)
    return _reply(state["decisions"][event_key], ctx)


@dataclass(frozen=True)
class Reading:
    version: str
    metric: str
    value: float
    threshold: float
    breached: bool
    detail: dict[str, Any]


def _readings(seen: dict[str, VersionMetrics], settings: MonitorSettings) -> list[Reading]:
    """One reading per (version, metric) that had enough data to be judged."""
    readings = []
    for version, metrics in seen.items():
        accuracy = metrics.accuracy
        if accuracy is not None and metrics.labeled >= settings.monitor_min_feedback:
            readings.append(Reading(version, "accuracy", accuracy, settings.accuracy_threshold,
                                    accuracy < settings.accuracy_threshold,
                                    {"samples": round(metrics.labeled)}))
        enough_predictions = metrics.predictions >= settings.monitor_min_predictions
        if metrics.latency_p95 is not None and enough_predictions:
            readings.append(Reading(version, "latency_p95", metrics.latency_p95,
                                    settings.latency_p95_threshold,
                                    metrics.latency_p95 > settings.latency_p95_threshold,
                                    {"samples": round(metrics.predictions)}))
        if metrics.max_psi is not None:
            readings.append(Reading(version, "psi", metrics.max_psi, settings.psi_threshold,
                                    metrics.max_psi > settings.psi_threshold,
                                    {"feature": metrics.psi_feature or "unknown"}))
    order = {metric: index for index, metric in enumerate(_METRICS)}
    return sorted(readings, key=lambda r: (order[r.metric], r.version))


def _apply_readings(
    state: dict[str, Any], readings: list[Reading], now: float, settings: MonitorSettings
) -> dict[str, Any] | None:
    """Count breaches into `state` and return the degradation due now, if any."""
    breaches: dict[str, int] = state["breaches"]
    cooldown_until: dict[str, float] = state["cooldown_until"]
    due = None
    for reading in readings:
        key = f"{reading.version}/{reading.metric}"
        breaches[key] = breaches.get(key, 0) + 1 if reading.breached else 0
        if (due is None and breaches[key] >= settings.monitor_breaches
                and now >= cooldown_until.get(reading.version, 0.0)):
            due = {
                "type": METRIC_DEGRADED,
                "data": {
                    "model": settings.model_name,
                    "version": reading.version,
                    "metric": reading.metric,
                    "value": reading.value,
                    "threshold": reading.threshold,
                    "window": settings.monitor_window,
                    "breaches": breaches[key],
                    **reading.detail,
                },
            }
            breaches[key] = 0
            cooldown_until[reading.version] = now + settings.monitor_cooldown_seconds
    return due


def _judge_canary(
    state: dict[str, Any], seen: dict[str, VersionMetrics], settings: MonitorSettings
) -> dict[str, Any] | None:
    canary = state.get("canary")
    if not canary or canary.get("passed"):
        return None
    candidate = seen.get(canary["candidate"])
    champion = seen.get(canary["champion"]) if canary.get("champion") else None
    enough = settings.canary_min_feedback
    if candidate is None or candidate.accuracy is None or candidate.labeled < enough:
        return None
    if canary.get("champion") and (
        champion is None or champion.accuracy is None or champion.labeled < enough
    ):
        return None
    bar = (champion.accuracy - settings.canary_tolerance
           if champion is not None and champion.accuracy is not None
           else settings.accuracy_threshold)
    if candidate.accuracy < bar:
        return None
    state["canary"] = {**canary, "passed": True}
    metrics = {"accuracy": candidate.accuracy, "labeled": candidate.labeled}
    if champion is not None and champion.accuracy is not None:
        metrics |= {"champion_accuracy": champion.accuracy, "champion_labeled": champion.labeled}
    return {
        "type": CANARY_PASSED,
        "data": {
            "model": settings.model_name,
            "version": canary["candidate"],
            "champion_version": canary.get("champion"),
            "metrics": metrics,
            "window": settings.monitor_window,
        },
    }


def _reply(decision: dict[str, Any] | None, ctx: Context[MonitorSettings]) -> CloudEvent | None:
    if decision is None:
        return None
    data = decision["data"]
    ctx.logger.info("%s: %s", decision["type"], data)
    return ctx.reply(decision["type"], data, extensions={MODELVERSION: data["version"]})
