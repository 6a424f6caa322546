"""The manifests agree with the code: vocabulary, function folders, skaffold, security."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from troupe.events import VOCABULARY, is_known, resolve

REPO = Path(__file__).resolve().parents[2]
FUNCTIONS = sorted(p.name for p in (REPO / "functions").iterdir() if (p / "main.py").is_file())


@cache
def _documents_in(folder: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for path in sorted((REPO / folder).rglob("*.yaml"))
                 for doc in yaml.safe_load_all(path.read_text()) if doc)


def documents(*folders: str) -> Iterator[dict[str, Any]]:
    for folder in folders:
        yield from _documents_in(folder)


def of_kind(kind: str, *folders: str) -> list[dict[str, Any]]:
    return [d for d in documents(*(folders or ("knative", "eventing"))) if d["kind"] == kind]


SERVICES = {s["metadata"]["name"]: s for s in of_kind("Service", "knative")}
TRIGGERS = of_kind("Trigger", "eventing")
SKAFFOLD = yaml.safe_load((REPO / "skaffold.yaml").read_text())


def test_every_trigger_filters_on_a_vocabulary_type() -> None:
    assert TRIGGERS
    for trigger in TRIGGERS:
        event_type = trigger["spec"]["filter"]["attributes"]["type"]
        assert is_known(event_type), f"{trigger['metadata']['name']}: {event_type}"
        assert resolve(event_type).type == event_type  # the CloudEvent type, not a short name


def test_every_consumed_type_has_its_trigger_and_nothing_more() -> None:
    routed = {(t["spec"]["subscriber"]["ref"]["name"], t["spec"]["filter"]["attributes"]["type"])
              for t in TRIGGERS}
    consumed = {(consumer, t.type) for t in VOCABULARY for consumer in t.consumed_by}
    assert routed == consumed


def test_every_subscriber_and_sink_is_a_service_in_knative() -> None:
    refs = [t["spec"]["subscriber"]["ref"] for t in TRIGGERS]
    for doc in documents("knative", "eventing", "skaffold"):
        delivery = (doc.get("spec") or {}).get("delivery")
        if delivery:
            refs.append(delivery["deadLetterSink"]["ref"])
    for ref in refs:
        assert (ref["apiVersion"], ref["kind"]) == ("serving.knative.dev/v1", "Service")
        assert ref["name"] in SERVICES
    assert {ref["name"] for ref in refs} >= {"dead-letters"}


def test_triggers_retry_with_backoff_then_dead_letter() -> None:
    for trigger in TRIGGERS:
        delivery = trigger["spec"]["delivery"]
        assert delivery["retry"] >= 1 and delivery["backoffPolicy"] == "exponential"
        assert delivery["deadLetterSink"]["ref"]["name"] == "dead-letters"
        ordered = trigger["metadata"].get("annotations", {}).get(
            "kafka.eventing.knative.dev/delivery.order")
        is_deployer = trigger["spec"]["subscriber"]["ref"]["name"] == "deployer"
        assert (ordered == "ordered") == is_deployer


def test_one_service_and_one_skaffold_artifact_per_function_folder() -> None:
    assert sorted(SERVICES) == FUNCTIONS
    artifacts = SKAFFOLD["build"]["artifacts"]
    assert sorted(a["image"] for a in artifacts) == FUNCTIONS
    for artifact in artifacts:
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == "functions/Dockerfile"
        assert artifact["docker"]["buildArgs"]["FUNCTION"] == artifact["image"]
    for name, service in SERVICES.items():
        (container,) = service["spec"]["template"]["spec"]["containers"]
        assert container["image"] == name  # skaffold substitutes the built image


def test_skaffold_applies_both_folders_and_has_dev_and_kind_profiles() -> None:
    assert SKAFFOLD["manifests"]["rawYaml"] == ["knative/*.yaml", "eventing/*.yaml"]
    profiles = {p["name"]: p for p in SKAFFOLD["profiles"]}
    synced = [p["value"] for p in profiles["dev"]["patches"] if p["path"].endswith("/sync")]
    assert len(synced) == len(FUNCTIONS)
    assert all(rule["src"].endswith("**/*.py") for s in synced for rule in s["manual"])
    kind = profiles["kind"]
    assert any("kubeContext" in a for a in kind["activation"])
    (patch,) = kind["patches"]
    kind_files = [p for pattern in patch["value"] for p in sorted(REPO.glob(pattern))]
    brokers = [d for path in kind_files for d in yaml.safe_load_all(path.read_text())
               if d and d["kind"] == "Broker"]
    assert [b["metadata"]["annotations"]["eventing.knative.dev/broker.class"]
            for b in brokers] == ["MTChannelBasedBroker"]
    kinds = {d["kind"] for path in kind_files for d in yaml.safe_load_all(path.read_text()) if d}
    assert "KafkaSource" not in kinds and "Trigger" in kinds


def test_the_cluster_broker_is_kafka_with_a_dead_letter_sink() -> None:
    (broker,) = of_kind("Broker", "eventing")
    assert broker["metadata"]["name"] == "default"
    assert broker["metadata"]["namespace"] == "troupe"
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"
    config = broker["spec"]["config"]
    (configmap,) = [c for c in of_kind("ConfigMap", "eventing")
                    if c["metadata"]["name"] == config["name"]]
    assert {"bootstrap.servers", "default.topic.partitions",
            "default.topic.replication.factor"} <= set(configmap["data"])
    assert broker["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] == "dead-letters"


def test_eventtypes_match_the_vocabulary() -> None:
    found = {}
    for eventtype in of_kind("EventType", "eventing"):
        attributes = {a["name"]: a.get("value") for a in eventtype["spec"]["attributes"]}
        found[attributes["type"]] = (attributes["dataschema"], eventtype["spec"]["description"])
    assert found == {t.type: (t.schema_uri, t.description) for t in VOCABULARY}


def test_sources_feed_the_broker() -> None:
    (ping,) = of_kind("PingSource", "eventing")
    (kafka,) = of_kind("KafkaSource", "eventing")
    for source in (ping, kafka):
        assert source["spec"]["sink"]["ref"]["kind"] == "Broker"
        assert source["spec"]["sink"]["ref"]["name"] == "default"
    assert int(ping["metadata"]["annotations"]["troupe.dev/interval-seconds"]) > 0


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_restricted_probed_and_scales_to_zero(name: str) -> None:
    service = SERVICES[name]
    labels = service["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == name
    assert labels["app.kubernetes.io/part-of"] == "troupe"
    assert labels["app.kubernetes.io/component"]
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert int(annotations["autoscaling.knative.dev/max-scale"]) >= 1
    assert int(annotations["autoscaling.knative.dev/target"]) >= 1
    assert annotations["autoscaling.knative.dev/metric"] in ("concurrency", "rps")
    spec = template["spec"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    assert {"configMapRef": {"name": "troupe-config"}} in container["envFrom"]
    assert any("secretRef" in source for source in container["envFrom"])
    if name == "trainer":
        assert spec["containerConcurrency"] == 1
        assert spec["timeoutSeconds"] >= 600
    # Only the deployer talks to the Kubernetes API.
    assert ("serviceAccountName" in spec) == (name == "deployer")


def test_rbac_binds_the_deployers_namespaced_role_to_its_account_only() -> None:
    # What the Role grants is checked in test_least_privilege.
    (role,) = of_kind("Role", "knative")
    assert not of_kind("ClusterRole") and not of_kind("ClusterRoleBinding")
    assert role["metadata"]["namespace"] == "troupe"
    (binding,) = of_kind("RoleBinding", "knative")
    (account,) = of_kind("ServiceAccount", "knative")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": "troupe"}]
    deployer = SERVICES["deployer"]["spec"]["template"]["spec"]
    assert deployer["serviceAccountName"] == account["metadata"]["name"]


def test_every_namespaced_object_lives_in_troupe() -> None:
    for doc in documents("knative", "eventing", "skaffold"):
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "troupe", doc["metadata"]["name"]
