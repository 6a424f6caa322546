"""A revision: the frozen snapshot of a Knative Service's `spec.template`, and how to run it."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from troupe.local.controlplane.kinds import CONFIGMAP, SECRET, Kind, Obj
from troupe.local.controlplane.objects import NotFound, ObjectStore
from troupe.local.conventions import parse_go_duration
from troupe.local.errors import InvalidFieldError
from troupe.local.serving.autoscaling import ScalingPolicy, scaling_policy
from troupe.local.serving.priority import PRIORITY_ANNOTATION, PriorityRules, PrioritySyntaxError

_SCALE = "autoscaling.knative.dev/"
# Knative's container-concurrency-target-default.
DEFAULT_TARGET = 100
# Knative leaves max-scale unbounded; on one machine a bound keeps a burst from forking
# dozens of gunicorns.
DEFAULT_MAX_SCALE = 4


@dataclass(frozen=True)
class ConfigSource:
    """ConfigMaps and Secrets by (namespace, name), for env/envFrom references."""

    config_maps: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[tuple[str, str], Mapping[str, str]] = field(default_factory=dict)


class _StoredData(Mapping[tuple[str, str], Mapping[str, str]]):
    """The data of the ConfigMaps or Secrets in the object store, as they are now, so that
    a revision made after `kubectl apply` of a ConfigMap reads the new values, as a pod
    started after it would. Secrets' values are base64, as the API keeps them."""

    def __init__(self, objects: ObjectStore, kind: Kind) -> None:
        self._objects, self._kind = objects, kind

    def __getitem__(self, key: tuple[str, str]) -> Mapping[str, str]:
        try:
            obj = self._objects.get(self._kind, *key)
        except NotFound:
            raise KeyError(key) from None
        data = {k: str(v) for k, v in (obj.get("data") or {}).items()}
        if self._kind == SECRET:
            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            data.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return data

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(o["metadata"]["namespace"], o["metadata"]["name"])
                     for o in self._objects.list(self._kind)])

    def __len__(self) -> int:
        return len(self._objects.list(self._kind))


def config_in_store(objects: ObjectStore) -> ConfigSource:
    return ConfigSource(_StoredData(objects, CONFIGMAP), _StoredData(objects, SECRET))


@dataclass(frozen=True)
class Revision:
    name: str
    service: str
    namespace: str
    image: str
    env: dict[str, str]
    container_concurrency: int  # hard limit per instance; 0 = unlimited
    target: int  # soft limit per instance, what the autoscaler aims for
    min_scale: int
    max_scale: int
    initial_scale: int  # instances a new revision starts with, to pass its readiness probe
    retention_seconds: float | None  # None: the runtime's grace period
    timeout_seconds: float
    scaling: ScalingPolicy
    priorities: PriorityRules
    template: Obj = field(repr=False, compare=False)

    @property
    def threads(self) -> int:
        return self.container_concurrency or min(self.target, 16)

    @property
    def slots(self) -> int:
        """Requests one instance serves at once: the queueing model's servers per instance."""
        return self.container_concurrency or self.threads


def build_revision(namespace: str, service: str, template: Obj, name: str,
                   config: ConfigSource) -> Revision:
    """Snapshot a Service's template as revision `name`; a dangling env reference raises
    InvalidFieldError naming the field."""
    annotations: Mapping[str, Any] = (template.get("metadata") or {}).get("annotations") or {}
    spec = template.get("spec") or {}
    container = spec["containers"][0]
    concurrency = int(spec.get("containerConcurrency") or 0)
    target = int(annotations.get(_SCALE + "target", 0)) or DEFAULT_TARGET
    if concurrency:
        target = min(target, concurrency)
    max_scale = int(annotations.get(_SCALE + "max-scale", 0)) or DEFAULT_MAX_SCALE
    retention = annotations.get(_SCALE + "scale-to-zero-pod-retention-period")
    return Revision(
        name=name,
        service=service,
        namespace=namespace,
        image=container["image"],
        env=_environment(container, namespace, config),
        container_concurrency=concurrency,
        target=target,
        min_scale=min(int(annotations.get(_SCALE + "min-scale", 0)), max_scale),
        max_scale=max_scale,
        initial_scale=min(int(annotations.get(_SCALE + "initial-scale", 1)), max_scale),
        retention_seconds=parse_go_duration(str(retention)) if retention is not None else None,
        timeout_seconds=float(spec.get("timeoutSeconds") or 300),
        scaling=scaling_policy(annotations, container),
        priorities=_priorities(annotations.get(PRIORITY_ANNOTATION)),
        template=copy.deepcopy(template),
    )


# Labels Knative puts on a Revision; they are not part of the template it was made from,
# nor is the annotation with its share of traffic (for `kubectl get revisions`).
SERVICE_LABEL: Final = "serving.knative.dev/service"
ROUTING_STATE: Final = "serving.knative.dev/routingState"
ROUTE_LABEL: Final = "serving.knative.dev/route"
TRAFFIC_ANNOTATION: Final = "troupe.dev/traffic"
_OWN_LABELS: Final = (SERVICE_LABEL, "serving.knative.dev/configuration",
                      "serving.knative.dev/configurationGeneration", ROUTING_STATE, ROUTE_LABEL)


def revision_object(revision: Revision, generation: int, owner: Obj | None = None) -> Obj:
    """The Revision resource Knative would create for `revision`, owned by `owner`
    (an owner reference to its Configuration)."""
    template_metadata = revision.template.get("metadata") or {}
    labels = {**(template_metadata.get("labels") or {}), SERVICE_LABEL: revision.service,
              "serving.knative.dev/configuration": revision.service,
              "serving.knative.dev/configurationGeneration": str(generation)}
    metadata: Obj = {"name": revision.name, "namespace": revision.namespace, "labels": labels}
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    if template_metadata.get("annotations"):
        metadata["annotations"] = copy.deepcopy(template_metadata["annotations"])
    return {"metadata": metadata, "spec": copy.deepcopy(revision.template.get("spec") or {})}


def template_of(revision: Obj) -> Obj:
    """The template a Revision resource was made from (the inverse of revision_object)."""
    metadata = revision["metadata"]
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k not in _OWN_LABELS}
    template_metadata: Obj = {"name": metadata["name"]}
    if labels:
        template_metadata["labels"] = labels
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items()
                   if k != TRAFFIC_ANNOTATION}
    if annotations:
        template_metadata["annotations"] = annotations
    return {"metadata": template_metadata, "spec": copy.deepcopy(revision.get("spec") or {})}


def same_template(revision: Revision, template: Obj) -> bool:
    """Whether `template` would make `revision` again: the same spec, labels and
    annotations, and no other name."""
    def essence(value: Obj) -> tuple[Any, Any, Any]:
        metadata = value.get("metadata") or {}
        return (value.get("spec") or {}, metadata.get("labels") or {},
                metadata.get("annotations") or {})

    wanted = (template.get("metadata") or {}).get("name")
    if wanted is not None and wanted != revision.name:
        return False
    return essence(revision.template) == essence(template)


def _priorities(text: Any) -> PriorityRules:
    if text is None:
        return PriorityRules()
    try:
        return PriorityRules.parse(str(text))
    except PrioritySyntaxError as error:
        raise InvalidFieldError(f"spec.template.metadata.annotations[{PRIORITY_ANNOTATION}]",
                                str(error)) from None


def _environment(container: Obj, namespace: str, config: ConfigSource) -> dict[str, str]:
    base = "spec.template.spec.containers[0]"
    values: dict[str, str] = {}
    for i, source in enumerate(container.get("envFrom") or []):
        prefix = str(source.get("prefix") or "")
        for ref_key, table, what in (("configMapRef", config.config_maps, "ConfigMap"),
                                     ("secretRef", config.secrets, "Secret")):
            ref = source.get(ref_key)
            if ref is None:
                continue
            data = table.get((namespace, str(ref.get("name"))))
            if data is None:
                if ref.get("optional"):
                    continue
                raise InvalidFieldError(f"{base}.envFrom[{i}].{ref_key}.name",
                                      f"{what} {ref.get('name')!r} not found in {namespace}")
            values.update({prefix + k: v for k, v in data.items()})
    for i, entry in enumerate(container.get("env") or []):
        if "value" in entry:
            values[entry["name"]] = str(entry["value"])
            continue
        value_from = entry.get("valueFrom") or {}
        for ref_key, table, what in (("configMapKeyRef", config.config_maps, "ConfigMap"),
                                     ("secretKeyRef", config.secrets, "Secret")):
            ref = value_from.get(ref_key)
            if ref is None:
                continue
            value = table.get((namespace, str(ref.get("name"))), {}).get(str(ref.get("key")))
            if value is not None:
                values[entry["name"]] = value
            elif not ref.get("optional"):
                raise InvalidFieldError(
                    f"{base}.env[{i}].valueFrom.{ref_key}",
                    f"{what} {ref.get('name')!r} has no key {ref.get('key')!r} in {namespace}")
    return values
