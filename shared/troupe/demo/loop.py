"""The closed loop, driven the way users would: publish data, send traffic and feedback,
and watch the lifecycle react through the event log. Nothing here tells a service what
to do; every step after a publish is the services answering each other's events."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudevents.core.v1.event import CloudEvent

from troupe.client.broker import post_event
from troupe.client.timeline import Step, build_timeline
from troupe.events import (
    DATA_VALIDATED,
    MODEL_DEPLOYED,
    MODEL_PROMOTED,
    PING,
    RUNID,
    TRAINING_REQUESTED,
    make_event,
)
from troupe.knative import Cluster
from troupe.store import Store

from .alarms import AlarmLog, alarm_of_kind
from .data import FEATURES, TARGET, DriftingSource
from .traffic import TrafficDriver
from .watcher import EventWatcher, Stalled

BEFORE, AFTER_DRIFT, AFTER_RETRAIN = "before", "after_drift", "after_retrain"


@dataclass(frozen=True)
class DemoOptions:
    seed: int = 7
    rows: int = 1500  # per batch
    # Three post-drift batches fill the retraining window (TROUPE_TRAINING_WINDOW=3), so
    # the retrained model learns the new rule only.
    drifted_batches: int = 3
    # None: a model of the run's own (demo-1, demo-2, ...), so that a run on a runtime
    # that has served other models, or earlier demos, starts from v1 like the first did.
    model: str | None = None
    namespace: str = "troupe"
    predictor: str = "predictor"
    feedback_per_phase: int = 300  # labeled predictions to measure a phase's accuracy
    step_timeout_s: float = 90.0
    # A canary is judged once each side has the feedback its power calculation asks for
    # (279 labels at the defaults, at 10% of the traffic): that step gets longer.
    canary_timeout_s: float = 300.0
    scenario: str = "abrupt"  # see troupe.demo.data.LIVE_SCENARIOS
    predictions: int = 2000  # `none`: labeled predictions watched for a false alarm


@dataclass
class DemoResult:
    model: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # first / retrained -> vN
    runids: dict[str, str] = field(default_factory=dict)
    accuracy: dict[str, float | None] = field(default_factory=dict)
    events: int = 0
    loop_seconds: float = 0.0  # first publish -> retrained model serving
    retrain_seconds: float = 0.0  # metric-degraded -> retrained model deployed
    dead_letters: int = 0
    traffic_errors: dict[str, int] = field(default_factory=dict)
    scenario: str = "abrupt"
    # Every metric-degraded: kind, metric, version and at_predictions, the labeled
    # predictions since the drift began (since the start for `none`) when it arrived.
    alarms: list[dict[str, Any]] = field(default_factory=list)
    detection_delay_predictions: int | None = None
    detection_delay_seconds: float | None = None
    # From the drift to the retrained model taking all the traffic.
    serving_delay_predictions: int | None = None
    serving_delay_seconds: float | None = None


def _runid(event: CloudEvent) -> str:
    return str(event.get_extension(RUNID))


def _validated_in(runid: str) -> Callable[[CloudEvent], bool]:
    return lambda e: e.get_type() == DATA_VALIDATED and _runid(e) == runid


class Demo:
    def __init__(self, info: dict[str, Any], options: DemoOptions,
                 say: Callable[[str], None]) -> None:
        self.info = info
        self.options = options
        self.say = say
        self.store = Store(info["store_url"])
        # Batches that arrive after a gradual drift are past its transition.
        batches = "abrupt" if options.scenario == "gradual" else options.scenario
        self.batches = DriftingSource(seed=options.seed, scenario=batches)
        self.live = DriftingSource(seed=options.seed + 1, scenario=options.scenario)
        self._events: list[CloudEvent] = []
        self._retrain_runid: str | None = None
        self.model = options.model or self._unused_demo_model()
        self._alarms = AlarmLog(self.model)

    def _unused_demo_model(self) -> str:
        numbers = [int(number) for key in self.store.list("registry")
                   if (number := key.removeprefix("registry/demo-").removesuffix(".json"))
                   .isdigit()]
        return f"demo-{max(numbers, default=0) + 1}"

    def timeline_of_retrain(self) -> list[Step]:
        """The retraining run's steps, rebuilt from the events the demo watched."""
        if self._retrain_runid is None:
            return []
        return build_timeline(self._events, {self._retrain_runid})

    def run(self, on_event: Callable[[CloudEvent], None]) -> DemoResult:
        result = DemoResult(model=self.model)
        self.say(f"this run trains a model of its own: {self.model}")
        started_at = datetime.now(UTC)
        dead_before = set(self.store.list("deadletters"))
        result.scenario = self.options.scenario
        watcher = EventWatcher(self.info["bootstrap_servers"], self.info["topic"],
                               since=started_at - timedelta(seconds=1),
                               on_event=self._alarms.recording(on_event))
        watcher.start()
        traffic: TrafficDriver | None = None
        try:
            started = time.monotonic()
            first = self._publish_batch("batch-1")
            deployed = self._wait(watcher, "model-deployed for the first dataset",
                                  lambda e: e.get_type() == MODEL_DEPLOYED
                                  and _runid(e) == _runid(first))
            result.versions["first"] = self._version(deployed)
            result.runids["first"] = _runid(first)

            traffic = TrafficDriver(self._predictor_url(), self.model, self.live)
            traffic.phase = BEFORE
            self._alarms.follow(traffic, BEFORE)
            traffic.start()
            if self.options.scenario == "none":
                self._watch_quietly(watcher, traffic)
                return self._finish(result, dead_before)
            self._wait_for_feedback(traffic, BEFORE)

            # The data that a retrain will need arrives first; then the traffic drifts.
            self.batches.drifted = True
            for index in range(self.options.drifted_batches):
                batch_runid = _runid(self._publish_batch(f"drifted-{index + 1}"))
                self._wait(watcher, f"data-validated for drifted batch {index + 1}",
                           _validated_in(batch_runid))
            self.say(f"injecting {self.options.scenario} drift into the traffic")
            self.live.drifted = True
            traffic.phase = AFTER_DRIFT
            self._alarms.follow(traffic, AFTER_DRIFT)
            if self.options.scenario == "covariate":
                self._expect_no_retrain(watcher, traffic)
                return self._finish(result, dead_before)
            degraded = self._wait(watcher, "a concept alarm (metric-degraded) after the drift",
                                  alarm_of_kind("concept", self.model))
            degraded_at = time.monotonic()
            self._wait(watcher, "training-requested from the policy",
                       lambda e: e.get_type() == TRAINING_REQUESTED
                       and _runid(e) == _runid(degraded))
            retrained = self._wait(watcher, "model-deployed for the retrained model",
                                   lambda e: e.get_type() == MODEL_DEPLOYED
                                   and _runid(e) == _runid(degraded))
            result.retrain_seconds = time.monotonic() - degraded_at
            version = self._version(retrained)
            data = retrained.get_data()
            if isinstance(data, dict) and data.get("strategy") == "canary":
                self.say(f"{version} is a canary: waiting for the monitor to pass it")
                watcher.wait_for(f"model-promoted for {version}",
                                 lambda e: e.get_type() == MODEL_PROMOTED
                                 and self._of_this_model(e) and self._version(e) == version,
                                 self.options.canary_timeout_s)
            result.loop_seconds = time.monotonic() - started
            result.serving_delay_predictions, result.serving_delay_seconds = (
                self._alarms.since_phase())
            result.versions["retrained"] = version
            result.runids["retrained"] = self._retrain_runid = _runid(degraded)
            traffic.phase = AFTER_RETRAIN
            self._wait_for_feedback(traffic, AFTER_RETRAIN)
        finally:
            if traffic is not None:
                traffic.stop()
                result.accuracy = {p: traffic.tally.accuracy(p)
                                   for p in (BEFORE, AFTER_DRIFT, AFTER_RETRAIN)}
                result.traffic_errors = dict(traffic.tally.errors)
            self._alarms.report_into(result, "covariate" if self.options.scenario == "covariate"
                                     else "concept")
            watcher.stop()
            self._events = watcher.events
            result.events = len(self._events)
        return self._finish(result, dead_before)

    def _finish(self, result: DemoResult, dead_before: set[str]) -> DemoResult:
        result.dead_letters = len(set(self.store.list("deadletters")) - dead_before)
        return result

    # -- steps ---------------------------------------------------------------------------
    def _watch_quietly(self, watcher: EventWatcher, traffic: TrafficDriver) -> None:
        """`none`: serve the configured number of labeled predictions, then two more
        monitor ticks so an alarm those predictions raised has had time to arrive."""
        wanted = self.options.predictions
        self.say(f"no drift: watching {wanted} labeled predictions for a false alarm")
        self._wait_for_feedback(traffic, BEFORE, wanted,
                                timeout_s=self.options.step_timeout_s + wanted / 10)
        self._wait_for_ticks(watcher, 2)

    def _expect_no_retrain(self, watcher: EventWatcher, traffic: TrafficDriver) -> None:
        """`covariate`: the inputs move, the answers stay right: reported, not retrained."""
        alarm = self._wait(watcher, "a covariate alarm (metric-degraded) after the shift",
                           alarm_of_kind("covariate", self.model))
        self._wait_for_feedback(traffic, AFTER_DRIFT)
        self._wait_for_ticks(watcher, 2)
        retrained = [e for e in watcher.events if e.get_type() == TRAINING_REQUESTED
                     and _runid(e) == _runid(alarm)]
        if retrained:
            raise Stalled("the covariate alarm was answered with training-requested; by "
                          "default the policy only reports it (TROUPE_RETRAIN_ON)")

    def _wait_for_ticks(self, watcher: EventWatcher, ticks: int) -> None:
        seen = len([e for e in watcher.events if e.get_type() == PING])
        self._wait(watcher, f"{ticks} more monitor ticks", lambda e: e.get_type() == PING
                   and len([x for x in watcher.events if x.get_type() == PING]) >= seen + ticks)

    def _publish_batch(self, name: str) -> CloudEvent:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        key = f"incoming/demo-{stamp}-{name}.csv"
        self.store.write_bytes(key, self.batches.batch_csv(self.options.rows))
        event = make_event(
            "data-arrived",
            {"uri": key, "format": "csv", "target": TARGET, "features": list(FEATURES),
             "classes": [0, 1], "model": self.model},
            source="/troupe/demo",
        )
        post_event(self.info["broker_url"], event)
        self.say(f"published data-arrived for {name}: {self.options.rows} rows at {key}")
        return event

    def _wait(self, watcher: EventWatcher, what: str,
              predicate: Callable[[CloudEvent], bool]) -> CloudEvent:
        return watcher.wait_for(what, predicate, self.options.step_timeout_s)

    def _wait_for_feedback(self, traffic: TrafficDriver, phase: str, wanted: int | None = None,
                           timeout_s: float | None = None) -> None:
        wanted = wanted or self.options.feedback_per_phase
        timeout_s = timeout_s or self.options.step_timeout_s
        deadline = time.monotonic() + timeout_s
        while traffic.tally.labeled[phase] < wanted:
            if time.monotonic() > deadline:
                raise Stalled(
                    f"only {traffic.tally.labeled[phase]} labeled predictions {phase} within "
                    f"{timeout_s:.0f} s (errors: {dict(traffic.tally.errors)})"
                )
            time.sleep(0.2)  # polling a counter another thread fills, with a deadline

    def _predictor_url(self) -> str:
        if self.info.get("predictor_url"):  # a cluster-local predictor, port-forwarded
            return str(self.info["predictor_url"])
        # The same client code a user would run against a cluster: the Service's status.url.
        cluster = Cluster.connect(self.info["kubeconfig"], self.info.get("context"))
        service = cluster.get_service(self.options.namespace, self.options.predictor)
        url = (service.get("status") or {}).get("url")
        if not url:
            raise Stalled(f"the {self.options.predictor} Service has no status.url yet")
        return str(url)

    def _of_this_model(self, event: CloudEvent) -> bool:
        data = event.get_data()
        return isinstance(data, dict) and data.get("model") == self.model

    @staticmethod
    def _version(event: CloudEvent) -> str:
        data = event.get_data()
        return str(data.get("version")) if isinstance(data, dict) else "?"
