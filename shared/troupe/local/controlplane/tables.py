"""Server-side tables, so `kubectl get` prints the columns each kind's CRD declares (URL,
latest revisions, READY, REASON for a Service) instead of only NAME and AGE.

Revisions also show the share of traffic their Service sends them and whether they are
serving, which Knative's own columns leave to `kn revision list`; the serving controller
keeps both in the Revision's labels and status.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from troupe.local.controlplane.kinds import Kind, Obj

Getter = Callable[[Obj], str]
# The annotation where the serving controller puts a revision's share of traffic
# (serving/revision.py spells it too: the control plane does not import serving).
TRAFFIC_ANNOTATION: Final = "troupe.dev/traffic"


def _status(key: str) -> Getter:
    def get(obj: Obj) -> str:
        value = (obj.get("status") or {}).get(key)
        return "" if value is None else str(value)  # 0 replicas shows as 0
    return get


def _spec(key: str) -> Getter:
    return lambda obj: str((obj.get("spec") or {}).get(key) or "")


def _condition(field: str) -> Getter:
    def get(obj: Obj) -> str:
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                return str(condition.get(field) or "")
        return "Unknown" if field == "status" else ""
    return get


def _label(key: str) -> Getter:
    return lambda obj: str(((obj.get("metadata") or {}).get("labels") or {}).get(key) or "")


def _annotation(key: str) -> Getter:
    return lambda obj: str(((obj.get("metadata") or {}).get("annotations") or {}).get(key)
                           or "")


def _address(obj: Obj) -> str:
    return str(((obj.get("status") or {}).get("address") or {}).get("url") or "")


def _age(obj: Obj) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return ""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _count(key: str) -> Getter:
    return lambda obj: str(len(obj.get(key) or {}))


def _attribute(name: str) -> Getter:
    def get(obj: Obj) -> str:
        for attribute in (obj.get("spec") or {}).get("attributes") or []:
            if attribute.get("name") == name:
                return str(attribute.get("value") or "")
        return ""
    return get


_READY: Final = [("Ready", _condition("status")), ("Reason", _condition("reason"))]
_COLUMNS: Final[dict[str, list[tuple[str, Getter]]]] = {
    "services": [("URL", _status("url")), ("LatestCreated", _status("latestCreatedRevisionName")),
                 ("LatestReady", _status("latestReadyRevisionName")), *_READY],
    "configurations": [("LatestCreated", _status("latestCreatedRevisionName")),
                       ("LatestReady", _status("latestReadyRevisionName")), *_READY],
    "routes": [("URL", _status("url")), *_READY],
    "revisions": [("Config Name", _label("serving.knative.dev/configuration")),
                  ("Generation", _label("serving.knative.dev/configurationGeneration")),
                  ("Traffic", _annotation(TRAFFIC_ANNOTATION)), *_READY,
                  ("Actual Replicas", _status("actualReplicas")),
                  ("Desired Replicas", _status("desiredReplicas"))],
    "brokers": [("URL", _address), *_READY,
                ("Class", _annotation("eventing.knative.dev/broker.class"))],
    "triggers": [("Broker", _spec("broker")), ("Subscriber_URI", _status("subscriberUri")),
                 *_READY],
    "pingsources": [("Sink", _status("sinkUri")), ("Schedule", _spec("schedule")), *_READY],
    "kafkasources": [("Topics", lambda o: ",".join((o.get("spec") or {}).get("topics") or [])),
                     ("Sink", _status("sinkUri")), *_READY],
    "eventtypes": [("Type", _attribute("type")), ("Source", _attribute("source")),
                   ("Description", _spec("description")), *_READY],
    "eventpolicies": [*_READY],
    "namespaces": [("Status", _status("phase"))],
    "configmaps": [("Data", lambda o: str(len(o.get("data") or {})
                                          + len(o.get("binaryData") or {})))],
    "secrets": [("Type", lambda o: str(o.get("type") or "Opaque")), ("Data", _count("data"))],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def as_table(kind: Kind, objects: list[Obj], include: str = "Metadata") -> Obj:
    """The Table kubectl prints; `include` is the request's includeObject (None, Metadata
    or Object: what each row carries besides its cells)."""
    columns: list[tuple[str, Getter]] = [("Name", lambda o: str(o["metadata"]["name"])),
                                         *_COLUMNS.get(kind.plural, []), ("Age", _age)]
    definitions: list[dict[str, Any]] = [
        {"name": name, "type": "string", "format": "name" if name == "Name" else "",
         "description": name, "priority": 0} for name, _ in columns]
    rows = []
    for obj in objects:
        row: Obj = {"cells": [get(obj) for _, get in columns]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": ""},
            "columnDefinitions": definitions, "rows": rows}
