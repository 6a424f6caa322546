"""Trigger filters: the legacy attribute filter and every spec.filters dialect."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane, InvalidResourceError
from troupe.local.eventing.broker.filters import FilterErrors, compile_trigger_filter

from .conftest import (
    NAMESPACE,
    binary_headers,
    broker_resource,
    trigger_resource,
    unique,
)
from .sink import RecordingSink

EVENT = {"type": "dev.troupe.model.approved", "source": "/evaluator", "subject": "v3",
         "id": "1", "specversion": "1.0", "runid": "r-9"}


def matches(spec: dict[str, Any], attributes: dict[str, str] = EVENT) -> bool:
    return compile_trigger_filter(spec, "Trigger t")(attributes)


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, True),
    ({"filter": {"attributes": {}}}, True),
    ({"filter": {"attributes": {"type": "dev.troupe.model.approved"}}}, True),
    ({"filter": {"attributes": {"type": "dev.troupe.model.rejected"}}}, False),
    ({"filter": {"attributes": {"type": "dev.troupe.model.approved", "runid": "r-9"}}}, True),
    ({"filter": {"attributes": {"type": "dev.troupe.model.approved", "runid": "r-1"}}}, False),
    # an empty value matches any value, but the attribute must be present
    ({"filter": {"attributes": {"runid": ""}}}, True),
    ({"filter": {"attributes": {"modelversion": ""}}}, False),
    ({"filter": {"attributes": {"modelversion": "v1"}}}, False),
])
def test_legacy_attribute_filter(spec: dict[str, Any], expected: bool) -> None:
    assert matches(spec) is expected


@pytest.mark.parametrize(("filters", "expected"), [
    ([{"exact": {"type": "dev.troupe.model.approved"}}], True),
    ([{"exact": {"type": "dev.troupe.model"}}], False),
    ([{"prefix": {"type": "dev.troupe.model."}}], True),
    ([{"prefix": {"type": "dev.troupe.data."}}], False),
    ([{"suffix": {"type": ".approved"}}], True),
    ([{"suffix": {"type": ".rejected"}}], False),
    ([{"exact": {"modelversion": "v1"}}], False),  # missing attribute
    ([{"prefix": {"modelversion": "v"}}], False),
    ([{"suffix": {"modelversion": "1"}}], False),
    ([{"not": {"exact": {"modelversion": "v1"}}}], True),
    ([{"not": {"prefix": {"type": "dev.troupe."}}}], False),
    ([{"all": [{"prefix": {"type": "dev.troupe."}}, {"exact": {"subject": "v3"}}]}], True),
    ([{"all": [{"prefix": {"type": "dev.troupe."}}, {"exact": {"subject": "v4"}}]}], False),
    ([{"any": [{"exact": {"subject": "v4"}}, {"suffix": {"source": "evaluator"}}]}], True),
    ([{"any": [{"exact": {"subject": "v4"}}, {"exact": {"runid": "x"}}]}], False),
    ([{"any": [{"not": {"exact": {"runid": "r-9"}}},
               {"all": [{"exact": {"source": "/evaluator"}},
                        {"not": {"suffix": {"type": "rejected"}}}]}]}], True),
    # the list is an implicit all
    ([{"prefix": {"type": "dev."}}, {"exact": {"runid": "r-9"}}], True),
    ([{"prefix": {"type": "dev."}}, {"exact": {"runid": "r-1"}}], False),
])
def test_new_filter_dialects(filters: list[Any], expected: bool) -> None:
    assert matches({"filters": filters}) is expected


def test_filters_override_the_legacy_filter() -> None:
    spec = {"filter": {"attributes": {"type": "something.else"}},
            "filters": [{"exact": {"source": "/evaluator"}}]}
    assert matches(spec) is True


@pytest.mark.parametrize(("filters", "expected"), [
    ([{"cesql": "type = 'dev.troupe.model.approved'"}], True),
    ([{"cesql": "type LIKE 'dev.troupe.model.%' AND subject IN ('v2', 'v3')"}], True),
    ([{"cesql": "source = '/evaluator' AND NOT EXISTS modelversion"}], True),
    ([{"cesql": "int(id) + 1 = 2 and runid like 'r-_'"}], True),
    ([{"cesql": "subject = 'v4' OR runid <> 'r-9'"}], False),
    ([{"any": [{"exact": {"subject": "v4"}}, {"cesql": "runid = 'r-9'"}]}], True),
    ([{"all": [{"prefix": {"type": "dev."}}, {"cesql": "subject = 'v4'"}]}], False),
    ([{"not": {"cesql": "subject = 'v4'"}}], True),
    # an evaluation error is no match; `not` turns that into a match, as in Knative
    ([{"cesql": "modelversion = 'v1'"}], False),
    ([{"not": {"cesql": "modelversion = 'v1'"}}], True),
    ([{"cesql": "int(runid) > 3"}], False),  # 'r-9' is no Integer: a cast error
])
def test_cesql_filters_alone_and_inside_all_any_not(filters: list[Any], expected: bool) -> None:
    assert matches({"filters": filters}) is expected


def test_cesql_evaluation_errors_are_counted_per_trigger() -> None:
    errors = FilterErrors()
    event_filter = compile_trigger_filter(
        {"filters": [{"any": [{"cesql": "modelversion = 'v1'"},
                              {"not": {"cesql": "int(subject) = 3"}}]}]}, "Trigger t", errors)
    assert event_filter(EVENT) is True  # both cesql filters failed; the `not` matched
    assert errors.count == 2
    assert event_filter({**EVENT, "modelversion": "v1"}) is True  # `any` stopped at it
    assert errors.count == 2


@pytest.mark.parametrize(("filters", "field", "says"), [
    ([{"cesql": "type = "}], "spec.filters[0].cesql", "column 7: expected an expression"),
    ([{"any": [{"exact": {"type": "a"}}, {"cesql": "type LIKE 3"}]}],
     "spec.filters[0].any[1].cesql", "column 11: expected a string literal, found '3'"),
    ([{"not": {"cesql": "subject = 'x"}}], "spec.filters[0].not.cesql", "never closed"),
    ([{"cesql": "LOWER(type)"}], "spec.filters[0].cesql", "String-valued"),
    ([{"cesql": "STARTS_WITH(type, 'dev')"}], "spec.filters[0].cesql", "no function"),
    ([{"cesql": ""}], "spec.filters[0].cesql", "must be a CESQL expression"),
    ([{"cesql": 42}], "spec.filters[0].cesql", "must be a CESQL expression"),
])
def test_an_invalid_cesql_expression_is_refused_at_load_time(
        filters: list[Any], field: str, says: str) -> None:
    with pytest.raises(InvalidResourceError) as raised:
        compile_trigger_filter({"filters": filters}, "Trigger t")
    assert raised.value.field == field
    assert says in raised.value.problem


@pytest.mark.parametrize("filters", [
    [{"exact": {"type": "a", "source": "b"}}],
    [{"prefix": {"type": ""}}],
    [{"bogus": {"type": "a"}}],
    [{"exact": {"type": "a"}, "prefix": {"type": "b"}}],
    [{"all": []}],
])
def test_malformed_filters_are_refused(filters: list[Any]) -> None:
    with pytest.raises(InvalidResourceError):
        compile_trigger_filter({"filters": filters}, "Trigger t")


@pytest.mark.kafka
def test_triggers_receive_what_their_filters_select(plane: DataPlane,
                                                    fresh_sink: RecordingSink) -> None:
    broker = unique("filters")
    plane.add_broker(broker_resource(broker))
    names = {role: f"{broker}-{role}" for role in ("all", "exact", "prefix", "none")}
    plane.add_trigger(trigger_resource(names["all"], broker, f"{fresh_sink.url}/all"))
    plane.add_trigger(trigger_resource(names["exact"], broker, f"{fresh_sink.url}/exact",
                                       filter_attributes={"type": "dev.example.wanted"}))
    plane.add_trigger(trigger_resource(names["prefix"], broker, f"{fresh_sink.url}/prefix",
                                       filters=[{"prefix": {"type": "dev.example."}}]))
    plane.add_trigger(trigger_resource(names["none"], broker, f"{fresh_sink.url}/none",
                                       filter_attributes={"type": "dev.example.other"}))
    assert plane.wait_ready(30)
    url = plane.broker_url(NAMESPACE, broker)
    for event_id, event_type in (("f-1", "dev.example.wanted"), ("f-2", "com.acme.thing")):
        response = requests.post(url, headers=binary_headers(event_id, event_type), data=b"{}",
                                 timeout=5)
        assert response.status_code == 202
    wait_until(lambda: len(fresh_sink.paths("/all")) == 2, message="the unfiltered trigger")
    wait_until(lambda: fresh_sink.paths("/exact") and fresh_sink.paths("/prefix"),
               message="both matching triggers")
    # The non-matching trigger has consumed past both events and delivered none.
    wait_until(lambda: plane.trigger_status(NAMESPACE, names["none"]).filtered_out == 2,
               message="the non-matching trigger to consume both events")
    assert sorted(fresh_sink.ids("/all")) == ["f-1", "f-2"]
    assert fresh_sink.ids("/exact") == ["f-1"]
    assert fresh_sink.ids("/prefix") == ["f-1"]
    assert fresh_sink.ids("/none") == []
    for name in names.values():
        assert plane.remove_trigger(NAMESPACE, name)


@pytest.mark.kafka
def test_cesql_triggers_deliver_exactly_the_matching_events(plane: DataPlane,
                                                           fresh_sink: RecordingSink) -> None:
    broker = unique("cesql")
    plane.add_broker(broker_resource(broker))
    cesql, either = f"{broker}-cesql", f"{broker}-any"
    plane.add_trigger(trigger_resource(cesql, broker, f"{fresh_sink.url}/cesql", filters=[
        {"cesql": "type LIKE 'dev.example.%' AND int(priority) >= 5 AND source IN ('/a', '/b')"}]))
    plane.add_trigger(trigger_resource(either, broker, f"{fresh_sink.url}/any", filters=[
        {"any": [{"exact": {"type": "dev.example.urgent"}}, {"cesql": "priority > 8"}]}]))
    assert plane.wait_ready(30)
    events = [  # id, type, source, priority (None: the event has no such attribute)
        ("c-1", "dev.example.a", "/a", "5"),  # cesql
        ("c-2", "dev.example.a", "/c", "9"),  # any, through its cesql
        ("c-3", "com.other.a", "/a", "7"),  # neither
        ("c-4", "dev.example.urgent", "/b", None),  # any, through its exact; cesql: missing
        ("c-5", "dev.example.b", "/b", "high"),  # neither: a cast error for both
        ("c-6", "dev.example.b", "/b", "10"),  # both
    ]
    url = plane.broker_url(NAMESPACE, broker)
    for event_id, event_type, source, priority in events:
        extensions = {"priority": priority} if priority is not None else {}
        response = requests.post(url, headers=binary_headers(event_id, event_type, source,
                                                             **extensions), data=b"{}", timeout=5)
        assert response.status_code == 202, response.text

    def finished(name: str, delivered: int) -> bool:
        status = plane.trigger_status(NAMESPACE, name)
        return (status.delivered, status.filtered_out) == (delivered, len(events) - delivered)

    wait_until(lambda: finished(cesql, 2), message=lambda: str(plane.trigger_status(
        NAMESPACE, cesql)))
    wait_until(lambda: finished(either, 3), message=lambda: str(plane.trigger_status(
        NAMESPACE, either)))
    assert sorted(fresh_sink.ids("/cesql")) == ["c-1", "c-6"]
    assert sorted(fresh_sink.ids("/any")) == ["c-2", "c-4", "c-6"]
    assert plane.trigger_status(NAMESPACE, cesql).filter_errors == 2  # c-4 and c-5
    assert plane.trigger_status(NAMESPACE, either).filter_errors == 1  # c-5
    for name in (cesql, either):
        assert plane.remove_trigger(NAMESPACE, name)
