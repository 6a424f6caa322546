"""Server-side tables, so `kubectl get ksvc` prints the columns Knative's CRDs declare
(URL, latest revisions, READY, REASON) instead of only NAME and AGE."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from troupe.local.controlplane.resources import Obj

Getter = Callable[[Obj], str]


def _status(obj: Obj, key: str) -> str:
    return str((obj.get("status") or {}).get(key) or "")


def _ready(obj: Obj, field: str) -> str:
    for condition in (obj.get("status") or {}).get("conditions", []):
        if condition.get("type") == "Ready":
            return str(condition.get(field) or "")
    return "Unknown" if field == "status" else ""


def _age(obj: Obj) -> str:
    created = obj["metadata"].get("creationTimestamp")
    if not created:
        return ""
    seconds = int((datetime.now(UTC) - datetime.fromisoformat(created)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _subscriber(obj: Obj) -> str:
    return _status(obj, "subscriberUri")


def _address(obj: Obj) -> str:
    return str(((obj.get("status") or {}).get("address") or {}).get("url") or "")


_COLUMNS: dict[str, list[tuple[str, Getter]]] = {
    "services": [("URL", lambda o: _status(o, "url")),
                 ("LatestCreated", lambda o: _status(o, "latestCreatedRevisionName")),
                 ("LatestReady", lambda o: _status(o, "latestReadyRevisionName"))],
    "brokers": [("URL", _address)],
    "triggers": [("Broker", lambda o: str(o["spec"].get("broker", ""))),
                 ("Subscriber_URI", _subscriber)],
    "pingsources": [("Sink", lambda o: _status(o, "sinkUri")),
                    ("Schedule", lambda o: str(o["spec"].get("schedule", "")))],
    "kafkasources": [("Topics", lambda o: ",".join(o["spec"].get("topics", []))),
                     ("Sink", lambda o: _status(o, "sinkUri"))],
}


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def as_table(plural: str, objects: list[Obj]) -> Obj:
    columns: list[tuple[str, Getter]] = [("Name", lambda o: str(o["metadata"]["name"])),
                                         *_COLUMNS.get(plural, []),
                                         ("Ready", lambda o: _ready(o, "status")),
                                         ("Reason", lambda o: _ready(o, "reason")),
                                         ("Age", _age)]
    definitions: list[dict[str, Any]] = [
        {"name": name, "type": "string", "format": "name" if name == "Name" else "",
         "description": name, "priority": 0} for name, _ in columns]
    rows = [{"cells": [get(obj) for _, get in columns],
             "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"]}} for obj in objects]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": ""},
            "columnDefinitions": definitions, "rows": rows}
