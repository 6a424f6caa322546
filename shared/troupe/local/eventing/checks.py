"""The data plane's own checks of Brokers and Triggers, run by admission on every create
and update, whether or not the data plane runs: a Trigger whose filter cannot compile (an
empty `exact` attribute, a CESQL expression that does not parse) is refused with the
field it names, as Knative's Trigger webhook refuses it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from troupe.local.controlplane.kinds import BROKER, TRIGGER, Obj
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.errors import InvalidFieldError, InvalidResourceError
from troupe.local.eventing.broker.spec import parse_broker, parse_trigger


def add_eventing_checks(objects: ObjectStore, namespace: str) -> None:
    objects.add_validator(BROKER, _check(parse_broker, namespace))
    objects.add_validator(TRIGGER, _check(parse_trigger, namespace))


def _check(parse: Callable[[Mapping[str, Any], str], Any],
           namespace: str) -> Callable[[Obj], None]:
    def check(obj: Obj) -> None:
        try:
            parse(obj, namespace)
        except InvalidResourceError as error:
            # The field alone: the API's answer names the resource already.
            raise InvalidFieldError(error.field, error.problem) from None
    return check
