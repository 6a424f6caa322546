"""What a Knative Service owns, as Knative's serving controller writes it: its
Configuration and Route (named as the Service), its Revisions' routing labels, and the
conditions and status fields of all four, so that `kubectl get ksvc,configuration,route,
revision` and `kubectl describe` read as on a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

from troupe.local.controlplane.kinds import SERVICE, Kind, Obj
from troupe.local.controlplane.objects import NotFound, ObjectStore, now_iso
from troupe.local.serving.pool import Readiness
from troupe.local.serving.revision import (
    ROUTE_LABEL,
    ROUTING_STATE,
    SERVICE_LABEL,
    TRAFFIC_ANNOTATION,
)


def owner_reference(kind: Kind, owner: Obj) -> Obj:
    return {"apiVersion": kind.api_version, "kind": kind.kind,
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def child_of(service: Obj, spec: Obj) -> Obj:
    """A Configuration or Route of `service`: same name, its labels, owned by it."""
    metadata = service["metadata"]
    return {"metadata": {"name": metadata["name"], "namespace": metadata["namespace"],
                         "labels": {SERVICE_LABEL: metadata["name"]},
                         "ownerReferences": [owner_reference(SERVICE, service)]},
            "spec": spec}


def condition(kind: str, readiness: Readiness, previous: Iterable[Obj] = ()) -> Obj:
    """A condition that keeps its lastTransitionTime while its status stays the same, so
    that reporting the same state again changes nothing a watch would see."""
    before = next((c for c in previous if c.get("type") == kind), None)
    since = before["lastTransitionTime"] if before and before.get("status") == \
        readiness.status and before.get("lastTransitionTime") else now_iso()
    made: Obj = {"type": kind, "status": readiness.status, "lastTransitionTime": since}
    if readiness.status != "True":
        made["reason"], made["message"] = readiness.reason, readiness.message
    return made


def overall(parts: Iterable[Readiness]) -> Readiness:
    """Ready as Knative combines its conditions: False if one is, else Unknown if one is."""
    listed = list(parts)
    return (next((p for p in listed if p.status == "False"), None)
            or next((p for p in listed if p.status == "Unknown"), None) or Readiness("True"))


def revision_status(readiness: Readiness, replicas: tuple[int, int], previous: Obj) -> Obj:
    conditions = previous.get("conditions") or []
    actual, desired = replicas
    active = Readiness("True") if actual else Readiness("False", "NoTraffic",
                                                        "The target is not receiving traffic.")
    return {"observedGeneration": 1, "actualReplicas": actual, "desiredReplicas": desired,
            "conditions": [condition("Ready", readiness, conditions),
                           condition("ContainerHealthy", readiness, conditions),
                           condition("ResourcesAvailable", readiness, conditions),
                           condition("Active", active, conditions)]}


def traffic_text(revision: str, traffic: list[Obj]) -> str:
    """`90%`, or `10% (candidate)`: the share a revision takes, for `kubectl get revisions`."""
    shares = [t for t in traffic if t.get("revisionName") == revision]
    if not shares:
        return ""
    percent = sum(int(t.get("percent") or 0) for t in shares)
    tags = [t["tag"] for t in shares if t.get("tag")]
    return f"{percent}%" + (f" ({', '.join(tags)})" if tags else "")


def with_routing(revision: Obj, traffic: list[Obj]) -> Obj:
    """`revision` with the labels and annotation that say whether and how it is routed."""
    name = revision["metadata"]["name"]
    text = traffic_text(name, traffic)
    metadata = revision["metadata"]
    labels = {**(metadata.get("labels") or {}),
              ROUTING_STATE: "active" if text else "reserve"}
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if k != TRAFFIC_ANNOTATION}
    if text:
        annotations[TRAFFIC_ANNOTATION] = text
        labels[ROUTE_LABEL] = labels[SERVICE_LABEL]
    else:
        labels.pop(ROUTE_LABEL, None)
    return {**revision, "metadata": {**metadata, "labels": labels,
                                     "annotations": annotations}}


def keep_child(objects: ObjectStore, kind: Kind, service: Obj, spec: Obj) -> Obj:
    """The Service's Configuration or Route, made or brought up to date."""
    made = child_of(service, spec)
    metadata = made["metadata"]
    try:
        current = objects.get(kind, metadata["namespace"], metadata["name"])
    except NotFound:
        return objects.create(kind, made)
    if current["spec"] == spec and current["metadata"].get("ownerReferences") == \
            metadata["ownerReferences"]:
        return current
    current["metadata"]["ownerReferences"] = metadata["ownerReferences"]
    return objects.replace(kind, {**current, "spec": spec})
