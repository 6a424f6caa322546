"""The monitor's handler, called directly, against a real Prometheus.

Prometheus scrapes a small exposition on loopback whose series the fixture sets (the
same names and labels the predictor exports), so every rule can be driven exactly:
thresholds, hysteresis, cooldown, redelivery, thin data and canaries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cloudevents.core.v1.event import CloudEvent
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from support.functions import load_function
from troupe.events import CANARY_PASSED, METRIC_DEGRADED, ROLLBACK_REQUESTED, make_event
from troupe.function.context import Context
from troupe.function.errors import PermanentError, TemporaryError
from troupe.local.observability.prometheus import PrometheusServer, find_prometheus
from troupe.ml.drift import baseline_bins
from troupe.store import Store
from werkzeug.serving import make_server

WINDOW = "2m"
START = datetime(2030, 1, 1, tzinfo=UTC)


monitor = load_function("monitor")

# (model, version) -> (labeled, correct) fed after Prometheus has seen the zeros.
FEEDBACK = {
    ("bad", "v1"): (40, 10),
    ("good", "v1"): (40, 39),
    ("thin", "v1"): (5, 0),
    ("canary", "v1"): (60, 54),
    ("canary", "v2"): (60, 55),
    ("worse-canary", "v1"): (60, 54),
    ("worse-canary", "v2"): (60, 30),
    ("drifted", "v1"): (200, 100),
    ("steady", "v1"): (300, 285),
}
# (model, version, feature) -> inputs per reference bin, fed like FEEDBACK.
BINS = {("shifted", "v1", "f1"): {9: 600}}
REFERENCE = baseline_bins(np.random.default_rng(0).normal(size=1000))


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    registry = CollectorRegistry()
    labels = ("model", "model_version")
    labeled = Counter("troupe_feedback_labeled", "", labels, registry=registry)
    correct = Counter("troupe_feedback_correct", "", labels, registry=registry)
    latency = Histogram("troupe_prediction_latency_seconds", "", labels, registry=registry,
                        buckets=(0.01, 0.1, 1.0, 5.0))
    drift = Gauge("troupe_feature_psi", "", (*labels, "feature"), registry=registry)
    bins = Counter("troupe_feature_bin", "", (*labels, "feature", "bin"), registry=registry)
    for model, version in FEEDBACK:
        labeled.labels(model, version)
        correct.labels(model, version)
    for model, version, feature in BINS:
        for index in range(len(REFERENCE.fractions)):
            bins.labels(model, version, feature, str(index))
    latency.labels("slow", "v1")
    exposition = make_server("127.0.0.1", 0, make_wsgi_app(registry), threaded=True)
    thread = threading.Thread(target=exposition.serve_forever, daemon=True)
    thread.start()
    with PrometheusServer(tmp_path_factory.mktemp("prometheus")) as prometheus:
        prometheus.set_targets("fake-predictor", [f"127.0.0.1:{exposition.server_port}"])
        # Counters must be seen at zero first, or increase() has no start to measure from.
        prometheus.wait_for('troupe_feedback_labeled_total{model="bad"}')
        for (model, version), (n_labeled, n_correct) in FEEDBACK.items():
            labeled.labels(model, version).inc(n_labeled)
            correct.labels(model, version).inc(n_correct)
        for (model, version, feature), counts in BINS.items():
            for index, count in counts.items():
                bins.labels(model, version, feature, str(index)).inc(count)
        for _ in range(30):
            latency.labels("slow", "v1").observe(2.0)
        drift.labels("drifting", "v1", "age").set(0.6)
        drift.labels("drifting", "v1", "income").set(0.05)
        prometheus.wait_for(
            f'increase(troupe_feedback_labeled_total{{model="worse-canary",'
            f'model_version="v2"}}[{WINDOW}]) >= 60'
        )
        prometheus.wait_for(f'increase(troupe_prediction_latency_seconds_count[{WINDOW}]) >= 30')
        prometheus.wait_for('troupe_feature_psi{model="drifting"}')
        prometheus.wait_for('troupe_feature_bin_total{model="shifted",bin="9"} >= 600')
        prometheus.wait_for('troupe_feedback_labeled_total{model="steady"} >= 300')
        yield prometheus.url
    exposition.shutdown()
    thread.join(timeout=5)


def settings(prometheus_url: str, model: str, **overrides: str) -> Any:
    env = {"TROUPE_PROMETHEUS_URL": prometheus_url, "TROUPE_MODEL_NAME": model,
           "TROUPE_MONITOR_WINDOW": WINDOW, "TROUPE_MONITOR_BREACHES": "3",
           "TROUPE_MONITOR_COOLDOWN_SECONDS": "600",
           "K_SERVICE": "monitor", **overrides}
    return monitor.MonitorSettings.from_env(env)


def tick(at: timedelta, event_id: str | None = None) -> CloudEvent:
    event = make_event("ping", {"message": "tick"}, source="/pingsource/monitor",
                       event_id=event_id or f"tick-{at.total_seconds():.0f}")
    attributes = {**event.get_attributes(), "time": START + at}
    return CloudEvent(attributes, event.get_data())


class Monitor:
    """Delivers events to the handler as the app factory would, with one store."""

    def __init__(self, settings: Any, store: Store) -> None:
        self.settings, self.store = settings, store

    def __call__(self, event: CloudEvent, received: datetime | None = None) -> CloudEvent | None:
        """Deliver `event` as received at `received`: by default when it is dated."""
        at = received or event.get_time() or datetime.now(UTC)
        reply: CloudEvent | None = monitor.handle(event, Context(
            settings=self.settings, store=self.store, event=event, received_at=at.timestamp()))
        return reply


def make_monitor(prometheus_url: str, tmp_path: Path, model: str, **overrides: str) -> Monitor:
    return Monitor(settings(prometheus_url, model, **overrides), Store(f"file://{tmp_path}"))


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# -- degradations ----------------------------------------------------------------------
@pytest.mark.prometheus
def test_accuracy_must_breach_three_ticks_then_cools_down(
    prometheus_url: str, tmp_path: Path
) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "bad")
    assert deliver(tick(seconds(0))) is None
    assert deliver(tick(seconds(60))) is None
    fired = deliver(tick(seconds(120)))
    assert fired is not None and fired.get_type() == METRIC_DEGRADED
    data = fired.get_data()
    assert data["model"] == "bad" and data["version"] == "v1" and data["metric"] == "accuracy"
    assert data["value"] == pytest.approx(0.25, abs=0.01)
    assert data["threshold"] == 0.8 and data["window"] == WINDOW and data["breaches"] == 3
    assert data["samples"] >= 40
    assert fired.get_extension("modelversion") == "v1"
    # Still bad, but inside the cooldown: quiet even after three more breaches.
    assert [deliver(tick(seconds(120 + 60 * i))) for i in (1, 2, 3)] == [None] * 3
    # The first tick after the cooldown fires again: the breaches kept counting.
    again = deliver(tick(seconds(120 + 601)))
    assert again is not None and again.get_data()["breaches"] == 4


@pytest.mark.prometheus
def test_the_cooldown_goes_by_the_time_of_receipt(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "bad", TROUPE_MONITOR_BREACHES="1",
                           TROUPE_MAX_CLOCK_SKEW_SECONDS="3600")
    assert deliver(tick(seconds(0))) is not None
    # Dated after the cooldown, but received inside it: quiet.
    assert deliver(tick(seconds(601)), received=START + seconds(60)) is None
    state = deliver.store.read_json("monitor/bad.json")
    assert state["cooldown_until"] == {"v1": (START + seconds(600)).timestamp()}


@pytest.mark.prometheus
def test_an_event_dated_in_the_future_is_refused_and_changes_nothing(
    prometheus_url: str, tmp_path: Path
) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "bad")
    assert deliver(tick(seconds(0))) is None
    before = deliver.store.read_json("monitor/bad.json")
    year_2100 = datetime(2100, 1, 1, tzinfo=UTC)
    with pytest.raises(PermanentError, match="TROUPE_MAX_CLOCK_SKEW_SECONDS"):
        deliver(tick(year_2100 - START), received=START + seconds(60))
    deployment = deployed("bad", "v2", "direct", [{"revision": "predictor-v2", "percent": 100}])
    from_2100 = CloudEvent({**deployment.get_attributes(), "time": year_2100},
                           deployment.get_data())
    with pytest.raises(PermanentError, match="2100-01-01"):
        deliver(from_2100, received=START + seconds(60))
    assert deliver.store.read_json("monitor/bad.json") == before


@pytest.mark.prometheus
def test_good_accuracy_never_fires(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "good")
    assert [deliver(tick(seconds(60 * i))) for i in range(5)] == [None] * 5
    state = deliver.store.read_json("monitor/good.json")
    assert state["breaches"] == {"v1/accuracy": 0}


@pytest.mark.prometheus
def test_a_redelivered_tick_is_not_a_second_breach(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "bad")
    assert deliver(tick(seconds(0))) is None
    assert deliver(tick(seconds(0))) is None  # same source and id
    assert deliver(tick(seconds(60))) is None
    fired = deliver(tick(seconds(120)))
    assert fired is not None
    # ... and a redelivered firing tick gets the very same reply.
    replayed = deliver(tick(seconds(120)))
    assert replayed is not None and replayed.get_id() == fired.get_id()
    assert replayed.get_data() == fired.get_data()


@pytest.mark.prometheus
def test_thin_or_absent_data_reports_nothing(prometheus_url: str, tmp_path: Path) -> None:
    for model in ("thin", "never-served"):
        deliver = make_monitor(prometheus_url, tmp_path / model, model, TROUPE_MONITOR_BREACHES="1")
        assert deliver(tick(seconds(0))) is None
        assert deliver.store.read_json(f"monitor/{model}.json")["breaches"] == {}


@pytest.mark.prometheus
def test_slow_predictions_breach_p95_latency(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "slow", TROUPE_MONITOR_BREACHES="1")
    fired = deliver(tick(seconds(0)))
    assert fired is not None
    assert fired.get_data()["metric"] == "latency_p95"
    assert 1.0 < fired.get_data()["value"] <= 5.0
    assert fired.get_data()["threshold"] == 0.5


@pytest.mark.prometheus
def test_drift_names_the_feature_with_the_highest_psi(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "drifting", TROUPE_MONITOR_BREACHES="1")
    fired = deliver(tick(seconds(0)))
    assert fired is not None
    assert fired.get_data()["metric"] == "psi"
    assert fired.get_data()["value"] == pytest.approx(0.6)
    assert fired.get_data()["feature"] == "age"


# -- against each version's own reference ---------------------------------------------
def record_reference(store: Store, model: str, accuracy: float | None = None,
                     features: bool = False) -> None:
    """What the evaluator and the trainer record for a version, as they record it."""
    if accuracy is not None:
        store.write_json(f"evaluations/{model}/v1.json",
                         {"metric": "accuracy", "candidate_score": accuracy,
                          "expected_accuracy": accuracy, "eval_rows": 300})
    if features:
        from sklearn.dummy import DummyClassifier

        version = store.registry.reserve_version(model, key="test")
        artifact = store.save_model(DummyClassifier().fit([[0.0]], [0]), name=model,
                                    version=version)
        uri = store.write_json(f"references/{model}/{version}.json",
                               {"rows": 1000, "features": {"f1": REFERENCE.to_json()}})
        store.registry.register(model, artifact=artifact, metrics={}, key="test",
                                lineage={"features": ["f1"], "reference_uri": uri})


@pytest.mark.prometheus
def test_errors_above_the_expected_rate_raise_a_concept_alarm(
    prometheus_url: str, tmp_path: Path
) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "drifted")
    record_reference(deliver.store, "drifted", accuracy=0.95)
    fired = deliver(tick(seconds(0)))  # no hysteresis: the test's own budget replaces it
    assert fired is not None and fired.get_type() == METRIC_DEGRADED
    data = fired.get_data()
    assert (data["kind"], data["test"], data["metric"]) == ("concept", "bernoulli-cusum",
                                                            "accuracy")
    assert data["value"] == pytest.approx(0.5) and data["threshold"] == 0.95
    assert data["statistic"] >= data["bound"] == pytest.approx(np.log(1e6))
    assert data["labelled"] == 200 and "window" not in data
    assert deliver(tick(seconds(60))) is None  # nothing new was labelled
    state = deliver.store.read_json("monitor/drifted.json")
    assert "v1/accuracy" not in state["breaches"]  # the fixed threshold is not used


@pytest.mark.prometheus
def test_errors_at_the_expected_rate_stay_quiet_and_count_once(
    prometheus_url: str, tmp_path: Path
) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "steady")
    record_reference(deliver.store, "steady", accuracy=0.95)
    assert [deliver(tick(seconds(60 * i))) for i in range(4)] == [None] * 4
    tests = deliver.store.read_json("monitor/steady.json")["detectors"]["v1"]
    assert tests["labelled"] == 300  # differenced, not summed over ticks
    assert tests["concept"]["state"]["labelled"] == 300


@pytest.mark.prometheus
def test_inputs_off_the_reference_raise_a_covariate_alarm(
    prometheus_url: str, tmp_path: Path
) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "shifted")
    record_reference(deliver.store, "shifted", features=True)
    fired = deliver(tick(seconds(0)))
    assert fired is not None and fired.get_type() == METRIC_DEGRADED
    data = fired.get_data()
    assert (data["kind"], data["test"], data["metric"]) == ("covariate", "chi-squared",
                                                            "feature_distribution")
    assert data["feature"] == "f1" and data["samples"] == 600
    assert data["value"] < data["threshold"] == pytest.approx(500 / 1e6)


def test_a_covariate_alarm_does_not_hold_back_a_concept_alarm() -> None:
    config = monitor.MonitorSettings(monitor_cooldown_seconds=600)
    state: dict[str, Any] = {"cooldown_until": {}, "pending": []}

    def alarm(kind: str) -> dict[str, Any]:
        return {"version": "v1", "kind": kind}

    monitor._queue(state, alarm("covariate"), 0.0, config)
    assert monitor._next_pending(state, "concept", 0.0, config) is None
    assert monitor._next_pending(state, "covariate", 0.0, config) is not None
    monitor._queue(state, alarm("covariate"), 30.0, config)  # inside its cooldown: dropped
    monitor._queue(state, alarm("concept"), 60.0, config)
    assert [p["data"]["kind"] for p in state["pending"]] == ["concept"]
    assert monitor._next_pending(state, "concept", 60.0, config) is not None
    monitor._queue(state, alarm("concept"), 120.0, config)  # the version is cooling down
    assert state["pending"] == []


# -- canaries --------------------------------------------------------------------------
def deployed(model: str, version: str, strategy: str, traffic: list[dict[str, Any]]) -> CloudEvent:
    event = make_event(
        "model-deployed",
        {"model": model, "version": version, "revision": f"predictor-{version}",
         "strategy": strategy, "traffic": traffic},
        source="/troupe/deployer",
        event_id=f"deployed-{model}-{version}",
    )
    return CloudEvent({**event.get_attributes(), "time": START}, event.get_data())


def canary_traffic(candidate: str, champion: str) -> list[dict[str, Any]]:
    return [{"revision": f"predictor-{champion}", "tag": "champion", "percent": 90},
            {"revision": f"predictor-{candidate}", "tag": "candidate", "percent": 10}]


# With no expected accuracy on record, the power calculation plans for 50%: a margin of
# 0.25 then asks for 50 labelled predictions per side, which the fixture's 60 satisfy.
WIDE_MARGIN = {"TROUPE_CANARY_MARGIN": "0.25"}


@pytest.mark.prometheus
def test_a_canary_as_good_as_the_champion_passes_once(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "canary", **WIDE_MARGIN)
    assert deliver(deployed("canary", "v2", "canary", canary_traffic("v2", "v1"))) is None
    passed = deliver(tick(seconds(0)))
    assert passed is not None and passed.get_type() == CANARY_PASSED
    data = passed.get_data()
    assert data["version"] == "v2" and data["champion_version"] == "v1"
    assert data["metrics"]["accuracy"] == pytest.approx(55 / 60)
    assert data["metrics"]["champion_accuracy"] == pytest.approx(54 / 60)
    test = data["test"]
    assert test["outcome"] == "promote" and test["required_per_side"] == 50
    assert (test["candidate_labelled"], test["champion_labelled"]) == (60, 60)
    assert test["estimate"] == pytest.approx(1 / 60)
    assert test["interval"][0] > -0.25
    assert deliver(tick(seconds(60))) is None
    history = deliver.store.read_json("monitor/canary.json")["deployments"]
    assert [(d["version"], d["strategy"]) for d in history] == [("v2", "canary")]


@pytest.mark.prometheus
def test_a_worse_canary_is_rolled_back_with_its_test(prometheus_url: str, tmp_path: Path) -> None:
    # (A low fixed threshold keeps the accuracy fallback out of the way.)
    deliver = make_monitor(prometheus_url, tmp_path, "worse-canary",
                           TROUPE_ACCURACY_THRESHOLD="0.1", **WIDE_MARGIN)
    deliver(deployed("worse-canary", "v2", "canary", canary_traffic("v2", "v1")))
    withdrawn = deliver(tick(seconds(0)))
    assert withdrawn is not None and withdrawn.get_type() == ROLLBACK_REQUESTED
    data = withdrawn.get_data()
    assert (data["version"], data["to_version"]) == ("v2", "v1")
    assert data["canary"]["outcome"] == "roll-back"
    assert data["canary"]["interval"][1] < -0.25
    assert "worse than the champion" in data["reason"]
    assert [deliver(tick(seconds(60 * i))) for i in (1, 2)] == [None, None]


@pytest.mark.prometheus
def test_an_undecided_canary_waits_then_is_rolled_back(prometheus_url: str, tmp_path: Path) -> None:
    # The default margin of 0.05 needs far more than 60 labels a side.
    deliver = make_monitor(prometheus_url, tmp_path, "canary",
                           TROUPE_CANARY_MAX_WAIT_SECONDS="900")
    deliver(deployed("canary", "v2", "canary", canary_traffic("v2", "v1")))
    assert [deliver(tick(seconds(60 * i))) for i in range(3)] == [None] * 3
    late = deliver(tick(seconds(900)))
    assert late is not None and late.get_type() == ROLLBACK_REQUESTED
    assert "undecided after 900s" in late.get_data()["reason"]


@pytest.mark.prometheus
def test_a_direct_deployment_ends_the_canary(prometheus_url: str, tmp_path: Path) -> None:
    deliver = make_monitor(prometheus_url, tmp_path, "canary")
    deliver(deployed("canary", "v2", "canary", canary_traffic("v2", "v1")))
    deliver(deployed("canary", "v3", "direct", [{"revision": "predictor-v3", "percent": 100}]))
    assert deliver(tick(seconds(0))) is None
    assert deliver.store.read_json("monitor/canary.json")["canary"] is None


@pytest.mark.prometheus
def test_ticks_judge_the_model_last_deployed_not_the_configured_one(
    prometheus_url: str, tmp_path: Path
) -> None:
    # Configured for "good", but "bad" took the predictor over (another model's rollout).
    deliver = make_monitor(prometheus_url, tmp_path, "good", TROUPE_MONITOR_BREACHES="1")
    assert deliver(tick(seconds(0))) is None  # "good" is fine
    deliver(deployed("bad", "v1", "direct", [{"revision": "predictor-bad-v1", "percent": 100}]))
    fired = deliver(tick(seconds(60)))
    assert fired is not None and fired.get_data()["model"] == "bad"


# -- Prometheus missing ----------------------------------------------------------------
def test_an_unreachable_prometheus_is_a_temporary_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deliver = make_monitor(url, tmp_path, "bad")
    with pytest.raises(TemporaryError, match="did not answer"):
        deliver(tick(seconds(0)))
    assert not Store(f"file://{tmp_path}").exists("monitor/bad.json")


def test_without_prometheus_configured_monitoring_is_off(tmp_path: Path) -> None:
    deliver = make_monitor("", tmp_path, "bad")
    assert deliver(tick(seconds(0))) is None


def test_other_event_types_are_refused(tmp_path: Path) -> None:
    deliver = make_monitor("http://127.0.0.1:9", tmp_path, "bad")
    event = make_event("training-requested", {"reason": "test"})
    with pytest.raises(PermanentError, match="consumes"):
        deliver(event)


def test_a_window_that_is_not_a_duration_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="TROUPE_MONITOR_WINDOW"):
        monitor.MonitorSettings.from_env({"TROUPE_MONITOR_WINDOW": "five minutes"})


def test_one_degradation_quiets_every_metric_of_that_version_only() -> None:
    # A drift breaks accuracy and PSI together; it must ask for one remedy, not two.
    config = monitor.MonitorSettings(monitor_breaches=1, monitor_cooldown_seconds=600)
    state: dict[str, Any] = {"breaches": {}, "cooldown_until": {}}

    def reading(version: str, metric: str) -> Any:
        return monitor.Reading(version, metric, 1.0, 0.5, True, {})

    both = [reading("v1", "accuracy"), reading("v1", "psi")]
    first = monitor._apply_readings(state, both, 0.0, "default", config)
    assert first is not None and first["data"]["metric"] == "accuracy"
    # psi of the same version: quiet
    assert monitor._apply_readings(state, both, 60.0, "default", config) is None
    other = monitor._apply_readings(state, [reading("v2", "psi")], 60.0, "default", config)
    assert other is not None and other["data"]["version"] == "v2"
    after = monitor._apply_readings(state, both, 601.0, "default", config)
    assert after is not None and after["data"]["version"] == "v1"
