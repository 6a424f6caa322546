"""Trigger filters: the legacy `spec.filter.attributes` and the `spec.filters` dialects.

Filters are compiled once, when a Trigger is loaded, into a predicate over an event's
context attributes as strings (what Kafka headers carry), so a dispatcher can drop an event
without decoding it. An unknown dialect or an invalid CESQL expression fails at load time,
never per event. A `cesql` filter whose evaluation reports an error does not match that
event (section 1.2 of the CESQL specification) and is counted; as in Knative, a `not`
around it then does match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from troupe.events.cesql import CesqlError, compile_filter
from troupe.local.eventing.broker.errors import InvalidResourceError

Attributes = Mapping[str, str]
EventFilter = Callable[[Attributes], bool]

_SINGLE_ATTRIBUTE_DIALECTS: Final = ("exact", "prefix", "suffix")
_DIALECTS: Final = (*_SINGLE_ATTRIBUTE_DIALECTS, "all", "any", "not", "cesql")


def header_attributes(headers: list[tuple[str, bytes | None]]) -> Attributes:
    """Context attributes straight from Kafka binary-mode headers: enough to filter on.

    Never raises: a header without a value (Kafka allows null) is left out, and bytes that
    are not UTF-8 are replaced. Delivery decides what such a record is (a dead letter).
    """
    attributes: dict[str, str] = {}
    for name, raw in headers:
        if raw is None:
            continue
        if name.startswith("ce_"):
            attributes[name[3:]] = raw.decode("utf-8", "replace")
        elif name == "content-type":
            attributes["datacontenttype"] = raw.decode("utf-8", "replace")
    return attributes


def match_all(_: Attributes) -> bool:
    return True


class FilterErrors:
    """How many events a Trigger's cesql filters could not evaluate (each was no match)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def heard(self, _: CesqlError) -> None:
        self.count += 1


def compile_trigger_filter(spec: Mapping[str, Any], resource: str,
                           errors: FilterErrors | None = None) -> EventFilter:
    """The Trigger's filter; `spec.filters`, when present, overrides `spec.filter`."""
    filters = spec.get("filters")
    if filters is not None:
        if not isinstance(filters, list):
            raise InvalidResourceError(resource, "spec.filters", "must be a list of filters")
        tally = errors if errors is not None else FilterErrors()
        return _all_of([_compile(f, resource, f"spec.filters[{i}]", tally)
                        for i, f in enumerate(filters)])
    legacy = spec.get("filter")
    if legacy is None:
        return match_all
    if not isinstance(legacy, Mapping):
        raise InvalidResourceError(resource, "spec.filter", "must be a mapping")
    attributes = legacy.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise InvalidResourceError(resource, "spec.filter.attributes", "must be a mapping")
    return _legacy_attributes({str(k): _text(v) for k, v in attributes.items()})


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _legacy_attributes(wanted: Mapping[str, str]) -> EventFilter:
    # Knative: the attribute must be present; an empty value matches any value.
    items = tuple(wanted.items())

    def matches(attributes: Attributes) -> bool:
        for name, value in items:
            actual = attributes.get(name)
            if actual is None or (value and actual != value):
                return False
        return True

    return matches


def _all_of(filters: list[EventFilter]) -> EventFilter:
    if not filters:
        return match_all
    if len(filters) == 1:
        return filters[0]
    return lambda attributes: all(f(attributes) for f in filters)


def _compile(node: Any, resource: str, field: str, errors: FilterErrors) -> EventFilter:
    if not isinstance(node, Mapping) or len(node) != 1:
        raise InvalidResourceError(
            resource, field, f"a filter must have exactly one dialect out of {', '.join(_DIALECTS)}"
        )
    dialect, argument = next(iter(node.items()))
    if dialect == "cesql":
        return _cesql_filter(argument, resource, f"{field}.cesql", errors)
    if dialect in _SINGLE_ATTRIBUTE_DIALECTS:
        return _attribute_filter(dialect, argument, resource, f"{field}.{dialect}")
    if dialect in ("all", "any"):
        if not isinstance(argument, list) or not argument:
            raise InvalidResourceError(resource, f"{field}.{dialect}", "must be a non-empty list")
        parts = [_compile(p, resource, f"{field}.{dialect}[{i}]", errors)
                 for i, p in enumerate(argument)]
        if dialect == "all":
            return _all_of(parts)
        return lambda attributes: any(p(attributes) for p in parts)
    if dialect == "not":
        inner = _compile(argument, resource, f"{field}.not", errors)
        return lambda attributes: not inner(attributes)
    raise InvalidResourceError(
        resource, f"{field}.{dialect}",
        f"unknown filter dialect {dialect!r}; use one of {', '.join(_DIALECTS)}",
    )


def _cesql_filter(argument: Any, resource: str, field: str,
                  errors: FilterErrors) -> EventFilter:
    if not isinstance(argument, str) or not argument.strip():
        raise InvalidResourceError(resource, field, "must be a CESQL expression, e.g. "
                                   "\"type = 'dev.troupe.model.approved' AND EXISTS runid\"")
    try:
        expression = compile_filter(argument)
    except CesqlError as error:
        raise InvalidResourceError(resource, field, str(error)) from None
    return expression.predicate(errors.heard)


def _attribute_filter(dialect: str, argument: Any, resource: str, field: str) -> EventFilter:
    if not isinstance(argument, Mapping) or len(argument) != 1:
        raise InvalidResourceError(resource, field, "must map exactly one attribute to a value")
    name, raw = next(iter(argument.items()))
    value = _text(raw)
    if dialect != "exact" and not value:
        raise InvalidResourceError(resource, f"{field}.{name}", f"an empty {dialect} matches all")
    if dialect == "exact":
        return lambda attributes: attributes.get(name) == value
    test = str.startswith if dialect == "prefix" else str.endswith

    def matches(attributes: Attributes) -> bool:
        actual = attributes.get(name)
        return actual is not None and test(actual, value)

    return matches
