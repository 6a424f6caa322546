"""The defaults Knative's webhooks (and the API server, for its own kinds) fill in on
every create and update, so that an object reads back as it would from a cluster.

Those of Knative's `SetDefaults` that change what a resource means are here: a Trigger's
broker (`default`), filter and subscriber namespace, a Service's traffic and revision
timeout, a Broker's class. Defaults Knative sets inside a container (its name, a
readiness probe's successThreshold) are left out: `kubectl apply` replaces a list whole,
so they would make every re-apply of an unchanged manifest report a change.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from troupe.local.controlplane.kinds import (
    BROKER,
    NAMESPACE,
    SECRET,
    SERVICE,
    TRIGGER,
    Kind,
    Obj,
)

BROKER_LABEL: Final = "eventing.knative.dev/broker"
BROKER_CLASS: Final = "eventing.knative.dev/broker.class"
# The local broker is modelled on Knative's Kafka broker.
DEFAULT_BROKER_CLASS: Final = "Kafka"
# Knative's config-defaults revision-timeout-seconds.
DEFAULT_REVISION_TIMEOUT: Final = 300


def _trigger(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    if not spec.get("broker"):
        spec["broker"] = "default"
    spec.setdefault("filter", {})
    ref = (spec.get("subscriber") or {}).get("ref")
    if isinstance(ref, dict) and not ref.get("namespace"):
        ref["namespace"] = obj["metadata"].get("namespace")
    obj["metadata"].setdefault("labels", {})[BROKER_LABEL] = spec["broker"]


def _service(obj: Obj) -> None:
    spec = obj.setdefault("spec", {})
    template_spec = spec.setdefault("template", {}).setdefault("spec", {})
    if isinstance(template_spec, dict):
        template_spec.setdefault("timeoutSeconds", DEFAULT_REVISION_TIMEOUT)
    traffic = spec.get("traffic")
    if not traffic:
        spec["traffic"] = [{"latestRevision": True, "percent": 100}]
    elif isinstance(traffic, list):
        for target in traffic:
            if isinstance(target, dict) and "latestRevision" not in target:
                target["latestRevision"] = not target.get("revisionName")


def _broker(obj: Obj) -> None:
    annotations = obj["metadata"].setdefault("annotations", {})
    annotations.setdefault(BROKER_CLASS, DEFAULT_BROKER_CLASS)


def _namespace(obj: Obj) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj["status"] = {"phase": "Terminating" if obj["metadata"].get("deletionTimestamp")
                     else "Active"}


def _secret(obj: Obj) -> None:
    """The API server folds the write-only `stringData` into `data`, as base64."""
    obj.setdefault("type", "Opaque")
    plain = obj.pop("stringData", None) or {}
    if plain:
        data = obj.setdefault("data", {})
        for key, value in plain.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


_DEFAULTS: Final[dict[Kind, Callable[[Obj], None]]] = {
    TRIGGER: _trigger, SERVICE: _service, BROKER: _broker, NAMESPACE: _namespace,
    SECRET: _secret}


def apply_defaults(kind: Kind, obj: Obj) -> None:
    """Fill in `obj`'s defaults, in place."""
    fill = _DEFAULTS.get(kind)
    if fill is not None and isinstance(obj.get("metadata"), dict):
        fill(obj)
