"""The checks a resource of a kind the runtime runs must pass, beyond its CRD schema.

They say what the runtime cannot run (a missing function folder name, traffic that does not
add up to 100, a cron schedule it cannot read). The same checks run on manifests at
`troupe up` and on objects created or patched through the control-plane API, so a bad field
gets the same message either way.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from troupe.local.controlplane.kinds import (
    BROKER,
    KAFKASOURCE,
    PINGSOURCE,
    REVISION,
    SECRET,
    SERVICE,
    TRIGGER,
    Kind,
    Obj,
)
from troupe.local.conventions import parse_go_duration
from troupe.local.errors import InvalidFieldError
from troupe.local.eventing.sources.cron import CronSchedule

INTERVAL_ANNOTATION: Final = "troupe.dev/interval-seconds"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes' own kinds take DNS subdomains (`troupe-config`, `system:deployer`-free names).
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate(kind: Kind, obj: Obj) -> None:
    """Raise InvalidFieldError naming the first field that is missing or wrong."""
    metadata = _mapping(obj, "metadata")
    name = metadata.get("name")
    if kind.group.endswith("knative.dev"):
        if not isinstance(name, str) or not _NAME.match(name) or len(name) > 63:
            raise InvalidFieldError("metadata.name",
                                    f"{name!r} must be a lowercase DNS-1123 label")
    elif not isinstance(name, str) or not _SUBDOMAIN.match(name) or len(name) > 253:
        raise InvalidFieldError("metadata.name",
                                f"{name!r} must be a lowercase DNS-1123 subdomain")
    spec = obj.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise InvalidFieldError("spec", "must be a mapping")
    check = _CHECKS.get(kind)
    if check is not None:
        check(obj)


def _validate_service(obj: Obj) -> None:
    name = obj["metadata"]["name"]
    template = _mapping(obj, "spec.template")
    revision_name = (template.get("metadata") or {}).get("name")
    if revision_name is not None and not str(revision_name).startswith(f"{name}-"):
        raise InvalidFieldError("spec.template.metadata.name",
                              f"{revision_name!r} must start with the service name '{name}-'")
    containers = _get(obj, "spec.template.spec.containers")
    if not isinstance(containers, list) or not containers:
        raise InvalidFieldError("spec.template.spec.containers", "needs exactly one container")
    container = containers[0]
    if not isinstance(container, dict) or not isinstance(container.get("image"), str):
        raise InvalidFieldError("spec.template.spec.containers[0].image",
                              "missing: name the function folder, e.g. image: ingest")
    for i, entry in enumerate(container.get("env") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidFieldError(f"spec.template.spec.containers[0].env[{i}].name", "missing")
    concurrency = _get(obj, "spec.template.spec.containerConcurrency")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 0):
        raise InvalidFieldError("spec.template.spec.containerConcurrency",
                              f"{concurrency!r} must be a whole number >= 0")
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    for key in ("autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/max-scale",
                "autoscaling.knative.dev/target", "autoscaling.knative.dev/initial-scale"):
        if key in annotations:
            _whole(annotations[key], f"spec.template.metadata.annotations[{key}]")
    retention = annotations.get("autoscaling.knative.dev/scale-to-zero-pod-retention-period")
    if retention is not None:
        try:
            parse_go_duration(str(retention))
        except ValueError as error:
            raise InvalidFieldError("spec.template.metadata.annotations[autoscaling.knative.dev/"
                                  "scale-to-zero-pod-retention-period]", str(error)) from None
    _validate_traffic(obj)


def _validate_revision(obj: Obj) -> None:
    _mapping(obj, "spec")
    labels = obj["metadata"].get("labels") or {}
    if not labels.get("serving.knative.dev/service"):
        raise InvalidFieldError("metadata.labels[serving.knative.dev/service]", "missing")


def _validate_traffic(obj: Obj) -> None:
    traffic = _get(obj, "spec.traffic")
    if traffic is None:
        return
    if not isinstance(traffic, list):
        raise InvalidFieldError("spec.traffic", "must be a list")
    total = 0
    for i, target in enumerate(traffic):
        field = f"spec.traffic[{i}]"
        if not isinstance(target, dict):
            raise InvalidFieldError(field, "must be a mapping")
        if not target.get("revisionName") and not target.get("latestRevision"):
            raise InvalidFieldError(field, "needs revisionName or latestRevision: true")
        if target.get("revisionName") and target.get("latestRevision"):
            raise InvalidFieldError(f"{field}.latestRevision",
                                  "must be false when revisionName is set")
        percent = target.get("percent", 0)
        if not isinstance(percent, int) or not 0 <= percent <= 100:
            raise InvalidFieldError(f"{field}.percent", f"{percent!r} must be 0-100")
        total += percent
    if traffic and total != 100:
        raise InvalidFieldError("spec.traffic", f"percentages add up to {total}, not 100")


def _validate_broker(obj: Obj) -> None:
    delivery = _get(obj, "spec.delivery")
    if delivery is not None and not isinstance(delivery, dict):
        raise InvalidFieldError("spec.delivery", "must be a mapping")


def _validate_trigger(obj: Obj) -> None:
    broker = _get(obj, "spec.broker")
    if not isinstance(broker, str) or not broker:
        raise InvalidFieldError("spec.broker", "missing: name the Broker, e.g. default")
    for key, value in (_get(obj, "spec.filter.attributes") or {}).items():
        if not isinstance(value, str):
            raise InvalidFieldError(f"spec.filter.attributes.{key}",
                                    f"{value!r} must be a string")
    for index, expression in enumerate(_get(obj, "spec.filters") or []):
        _validate_filter(expression, f"spec.filters[{index}]")
    _validate_destination(obj, "spec.subscriber")


_ATTRIBUTE: Final = re.compile(r"^[a-z0-9]+$")


def _validate_filter(expression: Any, field: str) -> None:
    """Knative's checks of a `filters` dialect: exact, prefix and suffix each take one
    attribute, named as CloudEvents names them, and a value that is not empty."""
    if not isinstance(expression, dict):
        raise InvalidFieldError(field, "must be a mapping with one dialect, e.g. exact")
    for dialect in ("exact", "prefix", "suffix"):
        if dialect not in expression:
            continue
        argument = expression[dialect]
        if not isinstance(argument, dict) or len(argument) != 1:
            raise InvalidFieldError(f"{field}.{dialect}", "takes exactly one attribute and "
                                    "its value, e.g. {type: dev.troupe.data.arrived}")
        (name, value), = argument.items()
        if not _ATTRIBUTE.match(str(name)):
            raise InvalidFieldError(f"{field}.{dialect}.{name}", "is not a CloudEvents "
                                    "attribute name (lowercase letters and digits)")
        if not isinstance(value, str) or not value:
            raise InvalidFieldError(f"{field}.{dialect}.{name}",
                                    "must be a string that is not empty")
    for nested in ("all", "any"):
        for index, child in enumerate(expression.get(nested) or []):
            _validate_filter(child, f"{field}.{nested}[{index}]")
    if "not" in expression:
        _validate_filter(expression["not"], f"{field}.not")


def _validate_pingsource(obj: Obj) -> None:
    schedule = _get(obj, "spec.schedule")
    if not isinstance(schedule, str):
        raise InvalidFieldError("spec.schedule", "missing: a cron schedule, e.g. '*/1 * * * *'")
    timezone = _get(obj, "spec.timezone")
    if timezone is not None and not isinstance(timezone, str):
        raise InvalidFieldError("spec.timezone", "must be an IANA time zone name, e.g. UTC")
    CronSchedule.parse(schedule, timezone)  # a CronError names spec.schedule or spec.timezone
    interval = (obj["metadata"].get("annotations") or {}).get(INTERVAL_ANNOTATION)
    if interval is not None:
        try:
            if float(interval) <= 0:
                raise ValueError
        except ValueError:
            raise InvalidFieldError(f"metadata.annotations[{INTERVAL_ANNOTATION}]",
                                  f"{interval!r} must be a positive number of seconds") from None
    _validate_destination(obj, "spec.sink")


def _validate_kafkasource(obj: Obj) -> None:
    topics = _get(obj, "spec.topics")
    if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
        raise InvalidFieldError("spec.topics", "needs a list of topic names")
    _validate_destination(obj, "spec.sink")
    delivery = _get(obj, "spec.delivery")
    if delivery is not None:
        if not isinstance(delivery, dict):
            raise InvalidFieldError("spec.delivery", "must be a mapping")
        if delivery.get("deadLetterSink") is not None:
            _validate_destination(obj, "spec.delivery.deadLetterSink")


def _validate_destination(obj: Obj, path: str) -> None:
    destination = _get(obj, path)
    if not isinstance(destination, dict):
        raise InvalidFieldError(path, "missing: give a ref (kind, name) or a uri")
    ref = destination.get("ref")
    if ref is None and not destination.get("uri"):
        raise InvalidFieldError(path, "needs a ref (kind, name) or a uri")
    if ref is not None and (not isinstance(ref, dict) or not ref.get("kind")
                            or not ref.get("name")):
        raise InvalidFieldError(f"{path}.ref", "needs kind and name")
    if ref is not None and ref.get("kind") not in ("Service", "Broker"):
        raise InvalidFieldError(f"{path}.ref.kind",
                              f"{ref.get('kind')!r}: locally only Service and Broker resolve")


def _validate_secret(obj: Obj) -> None:
    for key, value in (obj.get("data") or {}).items():
        try:
            base64.b64decode(str(value), validate=True)
        except ValueError:
            raise InvalidFieldError(f"data[{key}]", "is not base64; put plain text under "
                                    "stringData instead") from None


_CHECKS: Final[dict[Kind, Callable[[Obj], None]]] = {
    SERVICE: _validate_service, BROKER: _validate_broker, TRIGGER: _validate_trigger,
    PINGSOURCE: _validate_pingsource, KAFKASOURCE: _validate_kafkasource,
    REVISION: _validate_revision, SECRET: _validate_secret}


def _whole(value: Any, field: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise InvalidFieldError(field, f"{value!r} must be a whole number") from None
    if number < 0:
        raise InvalidFieldError(field, f"{value!r} must be >= 0")
    return number


def _mapping(obj: Obj, path: str) -> Obj:
    value = _get(obj, path)
    if not isinstance(value, dict):
        raise InvalidFieldError(path, "missing or not a mapping")
    return value


def _get(obj: Mapping[str, Any], path: str) -> Any:
    value: Any = obj
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value
