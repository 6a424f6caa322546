"""The cluster deployment grants each part only what it needs: who may connect to a pod, who
may post to the Broker, which pods hold a Kubernetes token, what the deployer may patch,
and which Services hold store credentials that can write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from troupe.local.controlplane.kinds import BROKER, KAFKASOURCE, PINGSOURCE, SERVICE, TRIGGER
from troupe.local.controlplane.manifests import load_project

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "troupe"
# The namespaces of Knative's data plane (activator and autoscaler; Kourier's gateway) and
# of the Prometheus that TROUPE_PROMETHEUS_URL names.
KNATIVE_DATA_PLANE = {"knative-serving", "kourier-system"}
PROMETHEUS_NAMESPACE = "monitoring"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def documents_with_files(*folders: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    yield path, doc


def of_kind(kind: str, *folders: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents_with_files(*(folders or ("knative", "eventing")))
            if doc["kind"] == kind]


SERVICES = {s["metadata"]["name"]: s for s in of_kind("Service", "knative")}
NETWORK_POLICIES = of_kind("NetworkPolicy", "knative")
(CONFIG,) = [c for c in of_kind("ConfigMap", "knative") if c["metadata"]["name"] == "troupe-config"]
PREDICTOR = CONFIG["data"]["TROUPE_PREDICTOR_SERVICE"]


def pod_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = SERVICES[name]["spec"]["template"]["spec"]
    return spec


def pod_labels(name: str) -> dict[str, str]:
    labels: dict[str, str] = SERVICES[name]["spec"]["template"]["metadata"]["labels"]
    return labels


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector with matchLabels only (all these manifests use)."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def admitted_namespaces(rule: dict[str, Any]) -> set[str]:
    """The namespaces one ingress rule admits, by their unforgeable name label."""
    names: set[str] = set()
    assert rule.get("from"), "an ingress rule without `from` admits every source"
    for peer in rule["from"]:
        # Only namespaces, named by the label the API server sets: no ipBlock, no pods of
        # this namespace, no label a namespace editor could copy.
        assert set(peer) == {"namespaceSelector"}, peer
        (expression,) = peer["namespaceSelector"]["matchExpressions"]
        assert (expression["key"], expression["operator"]) == (NAMESPACE_NAME_LABEL, "In")
        names.update(expression["values"])
    return names


# NetworkPolicies

def test_the_namespace_denies_ingress_by_default() -> None:
    defaults = [p for p in NETWORK_POLICIES if p["spec"]["podSelector"] == {}]
    assert len(defaults) == 1, "one policy selecting every pod in the namespace"
    (deny,) = defaults
    assert deny["metadata"]["namespace"] == NAMESPACE
    assert deny["spec"]["policyTypes"] == ["Ingress"]
    assert not deny["spec"].get("ingress"), "the default policy admits nothing"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_only_the_knative_data_plane_and_prometheus_reach_a_function(name: str) -> None:
    admitted: dict[str, set[int | str] | None] = {}
    for policy in NETWORK_POLICIES:
        if not selects(policy["spec"]["podSelector"], pod_labels(name)):
            continue
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        for rule in policy["spec"].get("ingress") or []:
            ports = {p["port"] for p in rule["ports"]} if rule.get("ports") else None
            for namespace in admitted_namespaces(rule):
                admitted[namespace] = ports
    assert set(admitted) == KNATIVE_DATA_PLANE | {PROMETHEUS_NAMESPACE}
    assert all(admitted[namespace] is None for namespace in KNATIVE_DATA_PLANE)
    # Prometheus reaches the function's own port, where /metrics is served, and no other.
    (container,) = pod_spec(name)["containers"]
    assert admitted[PROMETHEUS_NAMESPACE] == {p["containerPort"] for p in container["ports"]}


def test_network_policies_are_applied_before_any_service() -> None:
    files = {doc["kind"]: [] for _, doc in documents_with_files("knative")}
    for path, doc in documents_with_files("knative"):
        files[doc["kind"]].append(path.name)
    assert files["NetworkPolicy"], "no NetworkPolicy in knative/"
    assert max(files["NetworkPolicy"]) < min(files["Service"])
    assert min(files["NetworkPolicy"]) > max(files["Namespace"])


def test_only_the_predictor_is_published_outside_the_cluster() -> None:
    public = [name for name, service in SERVICES.items()
              if service["metadata"]["labels"].get("networking.knative.dev/visibility")
              != "cluster-local"]
    assert public == [PREDICTOR]


# The Broker's EventPolicy

def test_the_broker_admits_only_the_namespaces_identities_and_its_sources() -> None:
    (policy,) = of_kind("EventPolicy", "eventing")
    assert policy["apiVersion"] == "eventing.knative.dev/v1alpha1"
    assert policy["metadata"]["namespace"] == NAMESPACE
    (broker,) = of_kind("Broker", "eventing")
    assert policy["spec"]["to"] == [{"ref": {"apiVersion": broker["apiVersion"], "kind": "Broker",
                                             "name": broker["metadata"]["name"]}}]
    senders = policy["spec"]["from"]
    subjects = [s["sub"] for s in senders if "sub" in s]
    refs = [s["ref"] for s in senders if "ref" in s]
    assert len(subjects) + len(refs) == len(senders)
    assert subjects == [f"system:serviceaccount:{NAMESPACE}:*"]
    sources = [*of_kind("PingSource", "eventing"), *of_kind("KafkaSource", "eventing")]
    assert sorted((r["kind"], r["name"]) for r in refs) == sorted(
        (s["kind"], s["metadata"]["name"]) for s in sources)
    assert all(r["namespace"] == NAMESPACE for r in refs)


# ServiceAccount tokens and the deployer's Role

@pytest.mark.parametrize("name", sorted(SERVICES))
def test_only_the_deployer_mounts_a_service_account_token(name: str) -> None:
    spec = pod_spec(name)
    if name == "deployer":
        assert spec["serviceAccountName"] == "troupe-deployer"
        assert spec.get("automountServiceAccountToken", True) is True
    else:
        # Knative accepts this field only as false; true is its default.
        assert spec["automountServiceAccountToken"] is False
        assert "serviceAccountName" not in spec


def test_the_deployers_role_names_the_predictor_and_nothing_else() -> None:
    (role,) = of_kind("Role", "knative")
    assert role["rules"] == [{"apiGroups": ["serving.knative.dev"], "resources": ["services"],
                              "resourceNames": [PREDICTOR], "verbs": ["get", "patch"]}]
    assert PREDICTOR in SERVICES


# Store and Kafka credentials

def store_secrets(name: str) -> list[str]:
    (container,) = pod_spec(name)["containers"]
    return [source["secretRef"]["name"] for source in container["envFrom"]
            if "secretRef" in source]


def key_secrets(name: str) -> dict[str, dict[str, Any]]:
    """Variables set from one key of a Secret, by variable name."""
    (container,) = pod_spec(name)["containers"]
    return {entry["name"]: entry["valueFrom"]["secretKeyRef"]
            for entry in container.get("env") or [] if "secretKeyRef" in entry.get("valueFrom", {})}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_predictor_holds_store_credentials_apart_from_the_writers(name: str) -> None:
    expected = "troupe-store-predictor" if name == PREDICTOR else "troupe-store-writer"
    assert store_secrets(name) == [expected]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_only_the_predictor_holds_the_feedback_key_and_cannot_start_without_it(
    name: str,
) -> None:
    if name != PREDICTOR:
        assert key_secrets(name) == {}
        return
    reference = key_secrets(name)["TROUPE_FEEDBACK_KEY"]
    assert reference == {"name": "troupe-feedback", "key": "TROUPE_FEEDBACK_KEY"}
    assert not reference.get("optional"), "feedback is never taken without a key"


def test_the_kafka_broker_config_names_the_secret_with_kafkas_credentials() -> None:
    (broker,) = of_kind("Broker", "eventing")
    (config,) = [c for c in of_kind("ConfigMap", "eventing")
                 if c["metadata"]["name"] == broker["spec"]["config"]["name"]]
    assert config["data"]["auth.secret.ref.name"] == "troupe-kafka-auth"


def test_every_secret_referenced_is_documented_and_none_is_shipped() -> None:
    assert not of_kind("Secret"), "credentials never live in the repository"
    (broker_config,) = [c for c in of_kind("ConfigMap", "eventing")
                        if "auth.secret.ref.name" in c["data"]]
    referenced = {broker_config["data"]["auth.secret.ref.name"]}
    referenced.update(secret for name in SERVICES for secret in store_secrets(name))
    referenced.update(ref["name"] for name in SERVICES for ref in key_secrets(name).values())
    assert "troupe-feedback" in referenced
    readme = (REPO / "README.md").read_text()
    for secret in referenced:
        assert f"create secret generic {secret}" in readme, f"the README never creates {secret}"


# The local runtime reads the same files

def test_the_local_runtime_runs_the_manifests_and_keeps_every_other_kind() -> None:
    project = load_project(REPO)

    loaded = {(m.kind, m.obj["metadata"]["name"]) for m in project.resources}
    assert {name for kind, name in loaded if kind == SERVICE} == set(SERVICES)
    assert {name for kind, name in loaded if kind == TRIGGER} == {
        t["metadata"]["name"] for t in of_kind("Trigger", "eventing")}
    assert {kind for kind, _ in loaded} >= {SERVICE, BROKER, TRIGGER, PINGSOURCE, KAFKASOURCE}
    # Nothing the manifests declare is lost: the control plane serves every kind in them.
    declared = {(d["kind"], d["metadata"]["name"]) for _, d in documents_with_files(
        "knative", "eventing")}
    assert {(kind.kind, name) for kind, name in loaded} == declared
    assert project.secrets == {}  # credentials are created on the cluster, never shipped
