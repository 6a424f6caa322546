"""The policy's handler called directly, and once through the function app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from sklearn.dummy import DummyClassifier
from support.functions import load_function
from troupe.events import ROLLBACK_REQUESTED, TRAINING_REQUESTED, make_event, to_http_binary
from troupe.function import create_app
from troupe.function.context import Context
from troupe.function.errors import PermanentError
from troupe.store import Store

T0 = datetime(2030, 1, 1, tzinfo=UTC)
# Covariate alarms (psi) are only reported by default; these tests want every kind acted on.
EVERY_KIND = "concept,covariate,latency"


policy = load_function("policy")


def degraded(version: str, metric: str = "accuracy", *, at: timedelta,
             event_id: str | None = None, model: str = "default") -> CloudEvent:
    event = make_event(
        "metric-degraded",
        {"model": model, "version": version, "metric": metric, "value": 0.42,
         "threshold": 0.8, "window": "5m", "breaches": 3},
        source="/troupe/monitor",
        event_id=event_id or f"{version}-{metric}-{at.total_seconds():.0f}",
    )
    return CloudEvent({**event.get_attributes(), "time": T0 + at}, event.get_data())


class Policy:
    def __init__(self, store: Store, **env: str) -> None:
        self.store = store
        self.settings = policy.PolicySettings.from_env({"K_SERVICE": "policy", **env})

    def __call__(self, event: CloudEvent, received: datetime | None = None) -> CloudEvent | None:
        """Deliver `event` as received at `received`: by default when it is dated."""
        at = received or event.get_time() or datetime.now(UTC)
        reply: CloudEvent | None = policy.handle(event, Context(
            settings=self.settings, store=self.store, event=event, received_at=at.timestamp()))
        return reply


def record_deployments(store: Store, *deployments: tuple[str, timedelta]) -> None:
    """What the monitor writes on model-deployed."""
    store.write_json("monitor/default.json", {"deployments": [
        {"version": v, "time": (T0 + at).timestamp(), "strategy": "direct",
         "event": f"/troupe/deployer|{v}"} for v, at in deployments
    ]})


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_a_fresh_version_that_degrades_is_rolled_back(store: Store) -> None:
    record_deployments(store, ("v1", minutes(0)), ("v2", minutes(100)))
    reply = Policy(store)(degraded("v2", at=minutes(110)))
    assert reply is not None and reply.get_type() == ROLLBACK_REQUESTED
    data = reply.get_data()
    assert data["model"] == "default"
    assert (data["version"], data["to_version"]) == ("v2", "v1")
    assert "accuracy" in data["reason"] and "v1 before it was healthy" in data["reason"]
    assert reply.get_extension("modelversion") == "v2"


def test_the_deployers_records_come_first(store: Store) -> None:
    record_deployments(store, ("v1", minutes(0)), ("v5", minutes(100)))  # the monitor's view
    store.write_json("deployments/default.json", [
        {"version": v, "revision": f"predictor-{v}", "state": state, "strategy": "canary",
         "time": (T0 + at).isoformat(), "cause": f"/troupe/evaluator|{v}"}
        for v, state, at in [("v1", "serving", minutes(0)), ("v2", "serving", minutes(50)),
                             ("v3", "canary", minutes(100)), ("v3", "promoted", minutes(170))]
    ])
    reply = Policy(store)(degraded("v3", at=minutes(175)))  # 75 min after its canary began
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED
    reply = Policy(store, TROUPE_RECENT_DEPLOY_SECONDS="7200", TROUPE_RETRAIN_ON=EVERY_KIND)(
        degraded("v3", "psi", at=minutes(175)))
    assert reply is not None and reply.get_type() == ROLLBACK_REQUESTED
    assert reply.get_data()["to_version"] == "v2"


def test_an_old_version_that_degrades_is_retrained(store: Store) -> None:
    record_deployments(store, ("v1", minutes(0)), ("v2", minutes(100)))
    reply = Policy(store, TROUPE_RETRAIN_ON=EVERY_KIND)(degraded("v2", "psi",
                                                                 at=minutes(100 + 61)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED
    assert reply.get_data()["window"] == 3
    assert reply.get_data()["model"] == "default"
    assert reply.get_data()["reason"].startswith("metric-degraded: psi of default v2")


def test_no_rollback_to_a_predecessor_that_was_degraded(store: Store) -> None:
    record_deployments(store, ("v1", minutes(0)), ("v2", minutes(100)))
    decide = Policy(store)
    assert decide(degraded("v1", at=minutes(90))).get_type() == TRAINING_REQUESTED  # type: ignore[union-attr]
    reply = decide(degraded("v2", at=minutes(110)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED


def test_the_first_version_has_nothing_to_roll_back_to(store: Store) -> None:
    record_deployments(store, ("v1", minutes(0)))
    reply = Policy(store)(degraded("v1", at=minutes(5)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED


def test_without_deployment_records_the_registry_stands_in(store: Store) -> None:
    model = DummyClassifier().fit([[0.0], [1.0]], [0, 1])
    for key in ("first", "second"):
        version = store.registry.reserve_version("default", key=key)
        artifact = store.save_model(model, name="default", version=version)
        store.registry.register("default", artifact=artifact, metrics={}, lineage={}, key=key)
    event = degraded("v2", at=minutes(0))
    now = CloudEvent({**event.get_attributes(), "time": datetime.now(UTC)}, event.get_data())
    reply = Policy(store)(now)
    assert reply is not None and reply.get_type() == ROLLBACK_REQUESTED
    assert reply.get_data()["to_version"] == "v1"


def test_a_repeat_within_the_debounce_gets_no_reply(store: Store) -> None:
    decide = Policy(store, TROUPE_POLICY_DEBOUNCE_SECONDS="900")
    assert decide(degraded("v3", at=minutes(0))) is not None
    assert decide(degraded("v3", at=minutes(5))) is None
    assert decide(degraded("v3", "latency_p95", at=minutes(6))) is not None  # other metric
    assert decide(degraded("v3", at=minutes(16))) is not None  # debounce over


def test_the_retrain_budget_is_per_hour(store: Store) -> None:
    decide = Policy(store, TROUPE_RETRAIN_BUDGET="2", TROUPE_RETRAIN_ON=EVERY_KIND)
    assert decide(degraded("v3", "accuracy", at=minutes(0))) is not None
    assert decide(degraded("v3", "psi", at=minutes(1))) is not None
    assert decide(degraded("v3", "latency_p95", at=minutes(2))) is None  # budget spent
    reply = decide(degraded("v3", "latency_p95", at=minutes(61)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED


def test_a_redelivered_event_gets_the_same_reply_and_costs_no_budget(store: Store) -> None:
    decide = Policy(store, TROUPE_RETRAIN_BUDGET="2", TROUPE_RETRAIN_ON=EVERY_KIND)
    first = decide(degraded("v3", at=minutes(0), event_id="same"))
    again = decide(degraded("v3", at=minutes(0), event_id="same"))
    assert first is not None and again is not None
    assert (again.get_id(), again.get_data()) == (first.get_id(), first.get_data())
    assert decide(degraded("v3", "psi", at=minutes(1))) is not None  # budget had room
    state = store.read_json("policy/default.json")
    assert len(state["trainings"]) == 2


def drift_alarm(kind: str, *, at: timedelta, version: str = "v3") -> CloudEvent:
    """A statistical alarm as the monitor sends it: no window, the test and its statistic."""
    concept = kind == "concept"
    data = {"model": "default", "version": version, "kind": kind,
            "metric": "accuracy" if concept else "feature_distribution",
            "value": 0.61 if concept else 1e-9, "threshold": 0.94 if concept else 1.25e-4,
            "test": "bernoulli-cusum" if concept else "chi-squared", "statistic": 14.2,
            "bound": 13.8, "samples": 80, "labelled": 4200}
    if not concept:
        data["feature"] = "f2"
    event = make_event("metric-degraded", data, source="/troupe/monitor",
                       event_id=f"{version}-{kind}-{at.total_seconds():.0f}")
    return CloudEvent({**event.get_attributes(), "time": T0 + at}, event.get_data())


def test_a_concept_alarm_retrains_and_says_which_test_fired(store: Store) -> None:
    reply = Policy(store)(drift_alarm("concept", at=minutes(0)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED
    assert "by bernoulli-cusum (statistic 14.2)" in reply.get_data()["reason"]


def test_a_covariate_alarm_alone_is_reported_not_retrained(store: Store) -> None:
    decide = Policy(store)
    assert decide(drift_alarm("covariate", at=minutes(0))) is None
    assert decide(degraded("v3", "psi", at=minutes(1))) is None  # psi is covariate too
    assert store.read_json("policy/default.json").get("trainings") == []
    # ... and it spends nothing: a concept alarm right after still retrains.
    reply = decide(drift_alarm("concept", at=minutes(2)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED


def test_retraining_on_covariate_drift_can_be_switched_on(store: Store) -> None:
    decide = Policy(store, TROUPE_RETRAIN_ON="concept,covariate")
    reply = decide(drift_alarm("covariate", at=minutes(0)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED
    assert Policy(store, TROUPE_RETRAIN_ON="covariate")(
        drift_alarm("concept", at=minutes(30), version="v4")) is None


def test_an_unknown_kind_in_the_setting_is_refused() -> None:
    import pytest
    from troupe.function.settings import SettingsError

    with pytest.raises(SettingsError, match="TROUPE_RETRAIN_ON names unknown kinds"):
        policy.PolicySettings.from_env({"TROUPE_RETRAIN_ON": "concept,drift"})


def test_debounce_and_budget_go_by_the_time_of_receipt(store: Store) -> None:
    decide = Policy(store, TROUPE_POLICY_DEBOUNCE_SECONDS="900")
    assert decide(degraded("v3", at=minutes(0))) is not None
    # Dated a minute later, but delivered from a backlog sixteen minutes later: by the
    # policy's clock the debounce is over.
    reply = decide(degraded("v3", at=minutes(1)), received=T0 + minutes(16))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED
    state = store.read_json("policy/default.json")
    assert state["debounce"]["v3/accuracy"] == (T0 + minutes(16)).timestamp()
    assert state["trainings"] == [T0.timestamp(), (T0 + minutes(16)).timestamp()]


def test_an_event_dated_in_the_future_is_refused_and_changes_nothing(store: Store) -> None:
    decide = Policy(store, TROUPE_RETRAIN_BUDGET="2", TROUPE_RETRAIN_ON="concept,latency,covariate")
    assert decide(degraded("v3", "accuracy", at=minutes(0))) is not None
    assert decide(degraded("v3", "psi", at=minutes(1))) is not None
    before = store.read_json("policy/default.json")
    year_2100 = degraded("v3", "latency_p95", at=datetime(2100, 1, 1, tzinfo=UTC) - T0)

    with pytest.raises(PermanentError, match="2100-01-01") as refused:
        decide(year_2100, received=T0 + minutes(2))
    assert "TROUPE_MAX_CLOCK_SKEW_SECONDS" in str(refused.value)
    assert store.read_json("policy/default.json") == before
    # The retraining history still counts both: the budget stays spent within the hour.
    assert decide(degraded("v3", "latency_p95", at=minutes(3))) is None
    reply = decide(degraded("v3", "latency_p95", at=minutes(61)))
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED


def test_the_allowed_skew_is_configurable(store: Store) -> None:
    ahead = degraded("v3", at=minutes(10))
    with pytest.raises(PermanentError):
        Policy(store)(ahead, received=T0)  # ten minutes ahead; five allowed by default
    reply = Policy(store, TROUPE_MAX_CLOCK_SKEW_SECONDS="900")(ahead, received=T0)
    assert reply is not None and reply.get_type() == TRAINING_REQUESTED
    assert store.read_json("policy/default.json")["trainings"] == [T0.timestamp()]


def test_through_the_function_app(store: Store) -> None:
    settings = policy.PolicySettings.from_env(
        {"K_SERVICE": "policy", "TROUPE_STORE_URL": store.url}
    )
    client = create_app(policy.handle, settings, consumes=policy.CONSUMES).test_client()

    def post(event: CloudEvent) -> Any:
        message = to_http_binary(event)
        return client.post("/", data=message.body, headers=dict(message.headers))

    now = datetime.now(UTC)
    replied = post(degraded("v4", at=now - T0))
    assert replied.status_code == 200
    assert replied.headers["ce-type"] == TRAINING_REQUESTED
    debounced = post(degraded("v4", at=now - T0 + minutes(1)))  # a minute ahead: allowed
    assert debounced.status_code == 202 and debounced.get_data() == b""
    from_2100 = post(degraded("v4", "psi", at=datetime(2100, 1, 1, tzinfo=UTC) - T0))
    assert from_2100.status_code == 422
    assert "2100-01-01" in from_2100.get_json()["message"]
    assert len(store.read_json("policy/default.json")["trainings"]) == 1
    invalid = make_event("training-requested", {"reason": "not for the policy"})
    message = to_http_binary(invalid)
    wrong = client.post("/", data=message.body,
                        headers={**dict(message.headers), "ce-type": "dev.troupe.metric.degraded"})
    assert wrong.status_code == 422
