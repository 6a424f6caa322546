"""The deployer against a stateful Kubernetes API stand-in (kmock), through the real client.

The predictor Service is seeded from knative/, so the rollouts patch the manifest we ship.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from cloudevents.core.v1.event import CloudEvent
from support.functions import load_function
from troupe.events import MODEL_DEPLOYED, MODEL_PROMOTED, MODEL_ROLLED_BACK, make_event
from troupe.function import Context
from troupe.function.errors import PermanentError, TemporaryError
from troupe.knative import (
    Cluster,
    ClusterConfigError,
    ResourceConflictError,
    ResourceNotFoundError,
    trigger_manifest,
)
from troupe.store import ObjectRef, Store

REPO = Path(__file__).resolve().parents[3]
SERVICES = "serving.knative.dev/v1/services"
TRIGGERS = "eventing.knative.dev/v1/triggers"
PREDICTOR = (SERVICES, "troupe", "predictor")


deployer = load_function("deployer")


class KubeApi:
    """kmock's Kubernetes emulator served on a loopback port from a background loop."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.emulator: kmock.KubernetesEmulator | None = None
        self.url = ""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources[SERVICES] = kmock.ResourceInfo(kind="Service", namespaced=True)
            emulator.resources[TRIGGERS] = kmock.ResourceInfo(kind="Trigger", namespaced=True)
            self.emulator, self.url = emulator, str(server.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> KubeApi:
        self._thread.start()
        assert self._ready.wait(10), "kmock did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            assert self._loop is not None and self._stop is not None
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        }))
        return path

    @property
    def predictor(self) -> dict[str, Any]:
        assert self.emulator is not None
        return dict(self.emulator.objects[PREDICTOR].raw)

    @property
    def predictor_versions(self) -> int:
        """How many states the predictor Service went through: 1 + the patches applied."""
        assert self.emulator is not None
        return len([v for v in self.emulator.objects[PREDICTOR].history if v is not None])


@pytest.fixture
def kube() -> Iterator[KubeApi]:
    with KubeApi() as api:
        manifest = yaml.safe_load((REPO / "knative" / "540-predictor.yaml").read_text())
        assert api.emulator is not None
        api.emulator.objects[PREDICTOR] = manifest
        yield api


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(f"file://{tmp_path / 'store'}")
    for version in ("v1", "v2", "v3"):
        data = f"model {version}".encode()
        uri = store.write_bytes(f"models/default/{version}.skops", data)
        ref = ObjectRef(uri=uri, sha256=hashlib.sha256(data).hexdigest(), size=len(data))
        store.registry.register("default", artifact=ref, metrics={"accuracy": 0.9},
                                lineage={}, key=f"train-{version}")
    return store


def settings(kube: KubeApi, folder: Path, **overrides: Any) -> Any:
    environ = {"TROUPE_KUBECONFIG": str(kube.kubeconfig(folder)), "K_SERVICE": "deployer",
               **{f"TROUPE_{k.upper()}": str(v) for k, v in overrides.items()}}
    return deployer.DeployerSettings.from_env(environ)


def deliver(event: CloudEvent, store: Store, config: Any) -> CloudEvent:
    reply: CloudEvent | None = deployer.handle(
        event, Context(settings=config, store=store, event=event)
    )
    assert reply is not None
    return reply


def data_of(event: CloudEvent) -> dict[str, Any]:
    data = event.get_data()
    assert isinstance(data, dict)
    return data


def approved(version: str) -> CloudEvent:
    return make_event("model-approved", {"model": "default", "version": version,
                                         "metric": "accuracy", "candidate_score": 0.9},
                      source="/troupe/evaluator")


def traffic(kube: KubeApi) -> list[tuple[str, int, str]]:
    return [(t["revisionName"], t["percent"], t["tag"]) for t in kube.predictor["spec"]["traffic"]]


def env_of(kube: KubeApi) -> dict[str, str]:
    container = kube.predictor["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"] if "value" in item}


def test_direct_deploy_names_the_revision_and_sends_it_all_traffic(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path, deploy_strategy="direct")

    reply = deliver(approved("v1"), store, config)

    assert kube.predictor["spec"]["template"]["metadata"]["name"] == "predictor-v1"
    registered = store.registry.get("default", "v1")
    assert env_of(kube) == {"TROUPE_MODEL_NAME": "default", "TROUPE_MODEL_VERSION": "v1",
                            "TROUPE_MODEL_URI": registered.artifact_uri,
                            "TROUPE_MODEL_SHA256": registered.sha256}
    # The manifest's own settings survive the patch.
    container = kube.predictor["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert traffic(kube) == [("predictor-v1", 100, "champion")]
    assert reply.get_type() == MODEL_DEPLOYED
    assert data_of(reply)["strategy"] == "direct"
    assert reply.get_extension("modelversion") == "v1"
    champion = store.registry.champion("default")
    assert champion is not None and champion.version == "v1"
    history = store.read_json("deployments/default.json")
    assert [(r["version"], r["revision"], r["strategy"], r["state"]) for r in history] == [
        ("v1", "predictor-v1", "direct", "serving")]
    assert history[0]["time"]


def test_a_second_direct_deploy_keeps_the_previous_revision_routable(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path)
    deliver(approved("v1"), store, config)
    deliver(approved("v2"), store, config)
    assert traffic(kube) == [("predictor-v2", 100, "champion"), ("predictor-v1", 0, "previous")]


def test_canary_splits_traffic_then_promotion_moves_it_all(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path, deploy_strategy="canary", canary_percent=20)
    first = deliver(approved("v1"), store, config)
    # No champion yet: nothing to compare a canary with, so the first version goes direct.
    assert data_of(first)["strategy"] == "direct"

    canary = deliver(approved("v2"), store, config)

    assert data_of(canary)["strategy"] == "canary"
    assert traffic(kube) == [("predictor-v1", 80, "champion"), ("predictor-v2", 20, "candidate")]
    champion = store.registry.champion("default")
    assert champion is not None and champion.version == "v1"

    passed = make_event("canary-passed", {"model": "default", "version": "v2"},
                        source="/troupe/monitor")
    promoted = deliver(passed, store, config)

    assert promoted.get_type() == MODEL_PROMOTED
    assert traffic(kube) == [("predictor-v2", 100, "champion"), ("predictor-v1", 0, "previous")]
    champion = store.registry.champion("default")
    assert champion is not None and champion.version == "v2"


def test_rollback_restores_the_previous_revision(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path)
    for version in ("v1", "v2", "v3"):
        deliver(approved(version), store, config)

    request = make_event("rollback-requested", {"model": "default", "reason": "accuracy"},
                         source="/troupe/policy")
    reply = deliver(request, store, config)

    assert reply.get_type() == MODEL_ROLLED_BACK
    assert data_of(reply)["version"] == "v2"
    assert data_of(reply)["from_version"] == "v3"
    # v1 stays routable: a second rollback has somewhere to go.
    assert traffic(kube) == [("predictor-v2", 100, "champion"), ("predictor-v1", 0, "previous")]
    champion = store.registry.champion("default")
    assert champion is not None and champion.version == "v2"

    again = make_event("rollback-requested", {"model": "default", "reason": "still bad"},
                       source="/troupe/policy")
    assert data_of(deliver(again, store, config))["version"] == "v1"
    assert traffic(kube) == [("predictor-v1", 100, "champion")]


def test_rollback_during_a_canary_withdraws_the_candidate(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path, deploy_strategy="canary")
    deliver(approved("v1"), store, config)
    deliver(approved("v2"), store, config)

    request = make_event("rollback-requested", {"model": "default", "version": "v2",
                                                "reason": "latency"}, source="/troupe/policy")
    reply = deliver(request, store, config)

    assert (data_of(reply)["version"], data_of(reply)["from_version"]) == ("v1", "v2")
    assert traffic(kube) == [("predictor-v1", 100, "champion")]


def test_redelivery_replies_the_same_and_rolls_out_once(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path)
    event = approved("v1")
    first = deliver(event, store, config)
    states = kube.predictor_versions

    second = deliver(event, store, config)

    assert kube.predictor_versions == states  # no second patch
    assert (second.get_id(), data_of(second)) == (first.get_id(), data_of(first))
    # Another approval of the same version (a lost record) does not roll out again either.
    deliver(approved("v1"), store, config)
    assert kube.predictor_versions == states

    rollback_from_nothing = make_event("rollback-requested", {"model": "default", "reason": "x"})
    with pytest.raises(PermanentError, match="no earlier version"):
        deliver(rollback_from_nothing, store, config)


def test_impossible_requests_are_permanent_errors(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path)
    with pytest.raises(PermanentError, match="to roll back from"):
        deliver(make_event("rollback-requested", {"model": "default", "reason": "x"}),
                store, config)
    with pytest.raises(PermanentError, match="not in the model registry"):
        deliver(approved("v9"), store, config)
    # Revisions are predictor-<version>: another model's v1 must not pass for ours.
    other = make_event("model-approved", {"model": "fraud", "version": "v1",
                                          "metric": "accuracy", "candidate_score": 0.9})
    with pytest.raises(PermanentError, match="needs a predictor Service and a deployer"):
        deliver(other, store, config)
    deliver(approved("v1"), store, config)
    with pytest.raises(PermanentError, match="not the canary"):
        deliver(make_event("canary-passed", {"model": "default", "version": "v2"}),
                store, config)
    assert traffic(kube) == [("predictor-v1", 100, "champion")]


def test_a_model_the_patterns_admit_takes_the_predictor_over_with_its_own_revisions(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    data = b"demo model"
    ref = ObjectRef(uri=store.write_bytes("models/demo-2/v1.skops", data),
                    sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    store.registry.register("demo-2", artifact=ref, metrics={}, lineage={}, key="demo")
    config = settings(kube, tmp_path, deploy_strategy="canary", deploy_models="default,demo-*")
    deliver(approved("v1"), store, config)

    other = make_event("model-approved", {"model": "demo-2", "version": "v1",
                                          "metric": "accuracy", "candidate_score": 0.9})
    reply = deliver(other, store, config)

    # Not a canary against another model's champion: the new model takes all the traffic,
    # and its v1 is a revision of its own, not the default model's predictor-v1.
    assert data_of(reply)["strategy"] == "direct"
    assert traffic(kube) == [("predictor-demo-2-v1", 100, "champion"),
                             ("predictor-v1", 0, "previous")]
    assert env_of(kube)["TROUPE_MODEL_NAME"] == "demo-2"
    assert data_of(reply)["traffic"][0]["version"] == "v1"
    with pytest.raises(PermanentError, match="TROUPE_DEPLOY_MODELS"):
        deliver(make_event("model-approved", {"model": "fraud", "version": "v1",
                                              "metric": "accuracy", "candidate_score": 0.9}),
                store, config)


def test_an_unreachable_cluster_is_a_temporary_error(
    kube: KubeApi, store: Store, tmp_path: Path
) -> None:
    config = settings(kube, tmp_path)
    kube.stop()  # the API server goes away
    with pytest.raises(TemporaryError, match="unreachable"):
        deliver(approved("v1"), store, config)
    assert not store.exists("deployments/default.json")


def test_triggers_for_subscribers_are_created_listed_and_deleted(
    kube: KubeApi, tmp_path: Path
) -> None:
    cluster = Cluster.connect(kube.kubeconfig(tmp_path))
    cluster.create_trigger(trigger_manifest("troupe", "audit-model-deployed", broker="default",
                           filter_attributes={"type": MODEL_DEPLOYED},
                           sink_uri="http://audit.example.svc.cluster.local/events"))
    cluster.create_trigger(trigger_manifest("troupe", "reports-model-promoted", broker="default",
                           filter_attributes={"type": MODEL_PROMOTED}, service="reports"))

    stored = {t["metadata"]["name"]: t["spec"] for t in cluster.list_triggers("troupe")}
    assert stored["audit-model-deployed"]["subscriber"] == {
        "uri": "http://audit.example.svc.cluster.local/events"}
    assert stored["audit-model-deployed"]["filter"] == {"attributes": {"type": MODEL_DEPLOYED}}
    assert stored["reports-model-promoted"]["subscriber"]["ref"]["name"] == "reports"
    with pytest.raises(ResourceConflictError):
        cluster.create_trigger(trigger_manifest("troupe", "audit-model-deployed", broker="default",
                               filter_attributes={"type": MODEL_DEPLOYED}, service="audit"))

    cluster.delete_trigger("troupe", "audit-model-deployed")

    assert [t["metadata"]["name"] for t in cluster.list_triggers("troupe")] == [
        "reports-model-promoted"]
    with pytest.raises(ResourceNotFoundError):
        cluster.delete_trigger("troupe", "audit-model-deployed")
    with pytest.raises(ValueError, match="DNS label"):
        cluster.create_trigger(trigger_manifest("troupe", "Bad_Name", broker="default",
                               filter_attributes={}, service="x"))


def test_a_missing_kubeconfig_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ClusterConfigError, match="does not exist"):
        Cluster.connect(tmp_path / "absent")
