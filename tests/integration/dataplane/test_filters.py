"""Trigger filters: the legacy attribute filter and every spec.filters dialect."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from support.polling import wait_until
from troupe.local.eventing.broker import DataPlane, InvalidResourceError, UnsupportedFilterError
from troupe.local.eventing.broker.filters import compile_trigger_filter

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


def test_cesql_is_refused_at_load_time_with_a_clear_error() -> None:
    with pytest.raises(UnsupportedFilterError, match=r"cesql.*not supported yet"):
        compile_trigger_filter({"filters": [{"cesql": "type = 'x'"}]}, "Trigger t")
    with pytest.raises(UnsupportedFilterError):
        compile_trigger_filter({"filters": [{"not": {"cesql": "true"}}]}, "Trigger t")


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
