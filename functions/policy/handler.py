"""policy: turns `metric-degraded` into `rollback-requested` or `training-requested`.

- Act only on the kinds of degradation in TROUPE_RETRAIN_ON (default: concept and
  latency). A covariate alarm (the inputs moved, the answers did not get worse) is
  acknowledged and logged, with no reply: retraining on it would spend the budget on a
  model that is still right. The kind is the event's `kind`, or follows from its metric
  for events that carry none (accuracy: concept, psi: covariate, latency_p95: latency).
- Roll back when the degraded version was deployed recently (TROUPE_RECENT_DEPLOY_SECONDS)
  and the version serving before it was healthy: no degradation of it has reached the
  policy. A fresh deployment that makes things worse is undone, not retrained on.
- Otherwise ask for a retrain on the last TROUPE_TRAINING_WINDOW datasets, at most
  TROUPE_RETRAIN_BUDGET times per hour; beyond the budget the event is acknowledged
  with no reply and a warning.
- A second degradation of the same version and metric within TROUPE_POLICY_DEBOUNCE_SECONDS is
  acknowledged with no reply (202).
- The same event delivered twice gets the same decision (idempotency key: its source
  and id), so at most one rollback or retrain follows from it.
- Debounce, budget and "deployed recently" go by the policy's own clock: when it received
  the event. An event dated more than TROUPE_MAX_CLOCK_SKEW_SECONDS in the future is
  refused (422) and changes nothing.

Deployment history, first source that has any:
1. the deployer's records at `deployments/<model>.json` (a list, oldest first, each with
   `version`, `state` and an ISO `time`); a promotion is not a new deployment;
2. the `model-deployed` events the monitor recorded at `monitor/<model>.json`;
3. the model registry's versions: a version's predecessor is the one registered before
   it, and its registration time stands in for its deployment time.

State lives in the store at `policy/<model>.json`, changed only with update_json.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cloudevents.core.v1.event import CloudEvent
from troupe.events import METRIC_DEGRADED, MODELVERSION, ROLLBACK_REQUESTED, TRAINING_REQUESTED
from troupe.function import Context, Settings, SettingsError, data_object
from troupe.function.clock import DEFAULT_MAX_CLOCK_SKEW_SECONDS, received_time
from troupe.store import Store, StoreError

STATE_PREFIX: Final = "policy"
# Written by the deployer on each rollout (see functions/deployer/handler.py).
DEPLOYER_HISTORY_KEY: Final = "deployments/{model}.json"
# Written by the monitor on model-deployed (see functions/monitor/handler.py).
MONITOR_STATE_KEY: Final = "monitor/{model}.json"
# Deployer record states that put a version in front of users; "promoted" only widens
# the traffic of a canary that was already serving.
_STARTED_SERVING: Final = ("serving", "canary", "rolled-back")
_HOUR: Final = 3600.0
_REMEMBERED_DECISIONS: Final = 200
KINDS: Final = ("concept", "covariate", "latency")
_KIND_OF_METRIC: Final = {"accuracy": "concept", "psi": "covariate",
                          "feature_distribution": "covariate", "latency_p95": "latency"}


@dataclass(frozen=True)
class PolicySettings(Settings):
    recent_deploy_seconds: float = 3600.0  # deployed this recently → rollback candidate
    retrain_budget: int = 3  # training requests per hour
    policy_debounce_seconds: float = 900.0  # same version + metric within this → ignored
    training_window: int = 3  # datasets the retrain uses (the newest N)
    max_clock_skew_seconds: float = DEFAULT_MAX_CLOCK_SKEW_SECONDS  # event time ahead of ours
    # Kinds of degradation that call for a remedy (retrain or rollback); others are logged.
    retrain_on: tuple[str, ...] = ("concept", "latency")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.retrain_on) - set(KINDS))
        if unknown:
            raise SettingsError(f"TROUPE_RETRAIN_ON names unknown kinds {unknown}: use a "
                                f"comma-separated list of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Deployment:
    version: str
    time: float


@dataclass(frozen=True)
class Rollout:
    """When a version last started serving, and which version served before it."""

    version: str
    deployed_at: float
    previous: str | None


CONSUMES: Final = (METRIC_DEGRADED,)


def handle(event: CloudEvent, ctx: Context[PolicySettings]) -> CloudEvent | None:
    data = data_object(event)
    model, version, metric = data["model"], data["version"], data["metric"]
    settings = ctx.settings
    now = received_time(ctx, max_skew_seconds=settings.max_clock_skew_seconds)
    idempotency_key = f"{event.get_source()}|{event.get_id()}"
    rollout = find_rollout(ctx.store, model, version)

    def change(state: dict[str, Any]) -> dict[str, Any]:
        decisions = dict(state.get("decisions", {}))
        if idempotency_key in decisions:
            return state
        state = {
            **state,
            "debounce": dict(state.get("debounce", {})),
            "degraded": dict(state.get("degraded", {})),
            "trainings": [t for t in state.get("trainings", []) if now - t < _HOUR],
        }
        decisions[idempotency_key] = _decide(state, data, rollout, now, settings)
        state["decisions"] = dict(list(decisions.items())[-_REMEMBERED_DECISIONS:])
        return state

    state = ctx.store.update_json(f"{STATE_PREFIX}/{model}.json", change, default={})
    decision: dict[str, Any] = state["decisions"][idempotency_key]
    if decision["type"] is None:
        ctx.logger.warning("no action on %s %s %s: %s", model, version, metric, decision["why"])
        return None
    ctx.logger.info("%s: %s", decision["type"], decision["data"])
    return ctx.reply(decision["type"], decision["data"], extensions={MODELVERSION: version})


def _decide(
    state: dict[str, Any],
    data: dict[str, Any],
    rollout: Rollout | None,
    now: float,
    settings: PolicySettings,
) -> dict[str, Any]:
    """The decision for one new degradation; updates `state` (already a copy)."""
    model, version, metric = data["model"], data["version"], data["metric"]
    kind = kind_of(data)
    if kind not in settings.retrain_on:
        return {"type": None, "why": f"{kind} drift reported ({metric} of {version}); "
                f"TROUPE_RETRAIN_ON={','.join(settings.retrain_on)} does not act on it"}
    debounce_key = f"{version}/{metric}"
    last = state["debounce"].get(debounce_key)
    state["degraded"][version] = now
    if last is not None and now - last < settings.policy_debounce_seconds:
        return {"type": None, "why": f"{metric} of {version} already handled "
                f"{now - last:.0f}s ago (debounce {settings.policy_debounce_seconds:.0f}s)"}
    state["debounce"][debounce_key] = now
    symptom = (f"{metric} of {model} {version} was {data['value']:.4g} against "
               f"{data['threshold']:.4g}, "
               + (f"over {data['window']}" if data.get("window") else
                  f"by {data.get('test', 'a test')} (statistic {data.get('statistic', 0):.4g})"))
    age = now - rollout.deployed_at if rollout is not None else None
    if (rollout is not None and rollout.previous is not None and age is not None
            and age <= settings.recent_deploy_seconds
            and rollout.previous not in state["degraded"]):
        return {"type": ROLLBACK_REQUESTED, "data": {
            "model": model, "version": version, "to_version": rollout.previous,
            "reason": f"{symptom}; {version} was deployed {age:.0f}s ago and "
                      f"{rollout.previous} before it was healthy",
        }}
    if len(state["trainings"]) >= settings.retrain_budget:
        return {"type": None, "why": f"retrain budget of {settings.retrain_budget} per hour "
                f"is spent ({symptom})"}
    state["trainings"].append(now)
    return {"type": TRAINING_REQUESTED, "data": {
        "model": model, "window": settings.training_window,
        "reason": f"metric-degraded: {symptom}",
    }}


def kind_of(data: dict[str, Any]) -> str:
    return str(data.get("kind") or _KIND_OF_METRIC.get(str(data["metric"]), "concept"))


def deployment_history(store: Store, model: str) -> list[Deployment]:
    """Deployments of `model`, oldest first (see the module docstring for the sources)."""
    rollouts = store.read_json(DEPLOYER_HISTORY_KEY.format(model=model), default=[])
    deployments = [
        Deployment(str(r["version"]), datetime.fromisoformat(r["time"]).timestamp())
        for r in rollouts if isinstance(rollouts, list)
        if isinstance(r, dict) and r.get("version") and r.get("time")
        and r.get("state") in _STARTED_SERVING
    ]
    if deployments:
        return deployments
    recorded = store.read_json(MONITOR_STATE_KEY.format(model=model), default={})
    deployments = [
        Deployment(str(d["version"]), float(d["time"]))
        for d in recorded.get("deployments", [])
        if isinstance(d, dict) and d.get("version") and d.get("time") is not None
    ]
    if deployments:
        return deployments
    try:
        versions = store.registry.versions(model)
    except StoreError:
        return []
    return [Deployment(v.version, datetime.fromisoformat(v.created).timestamp()) for v in versions]


def find_rollout(store: Store, model: str, version: str) -> Rollout | None:
    """The latest time `version` started serving and what served before it; None when
    the history does not know the version."""
    history = deployment_history(store, model)
    for index in range(len(history) - 1, -1, -1):
        if history[index].version == version:
            before = [d.version for d in history[:index] if d.version != version]
            return Rollout(version, history[index].time, before[-1] if before else None)
    return None
