"""make_event, validate and lineage: the vocabulary's own rules."""

from __future__ import annotations

import pytest
from cloudevents.core.v1.event import CloudEvent
from troupe import events
from troupe.events import (
    DATA_ARRIVED,
    DATA_VALIDATED,
    MODEL_APPROVED,
    TRAINING_REQUESTED,
    InvalidEventDataError,
    InvalidExtensionError,
    UnknownEventTypeError,
    make_event,
    validate,
    with_lineage,
)

SHA = "ab" * 32
ARRIVED = {"uri": "datasets/iris.csv", "target": "species"}


def test_make_event_sets_the_core_attributes_from_the_vocabulary() -> None:
    event = make_event("data-arrived", ARRIVED, source="/tests")
    assert event.get_type() == DATA_ARRIVED
    assert event.get_source() == "/tests"
    assert event.get_specversion() == "1.0"
    assert event.get_datacontenttype() == "application/json"
    assert event.get_dataschema() == events.resolve(DATA_ARRIVED).schema_uri
    assert event.get_time() is not None and event.get_time().tzinfo is not None
    assert event.get_data() == ARRIVED


def test_an_event_without_cause_starts_a_run_named_by_its_id() -> None:
    event = make_event("data-arrived", ARRIVED)
    assert event.get_extension("runid") == event.get_id()


def test_make_event_copies_lineage_from_its_cause() -> None:
    cause = make_event(
        "training-requested",
        {"reason": "drift"},
        extensions={
            "runid": "run-7",
            "modelversion": "v3",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        },
    )
    effect = make_event("data-rejected", {"uri": "x", "reasons": ["empty"]}, cause=cause)
    assert effect.get_extension("runid") == "run-7"
    assert effect.get_extension("modelversion") == "v3"
    assert effect.get_extension("traceparent") == cause.get_extension("traceparent")
    assert effect.get_id() != cause.get_id()


def test_explicit_extensions_win_over_inherited_lineage() -> None:
    cause = make_event("training-requested", {"reason": "drift"}, extensions={"modelversion": "v3"})
    effect = make_event(
        "training-failed", {"reason": "no data"}, cause=cause, extensions={"modelversion": "v4"}
    )
    assert effect.get_extension("modelversion") == "v4"
    assert effect.get_extension("runid") == cause.get_extension("runid")


def test_a_foreign_cause_without_runid_names_the_run_by_its_id() -> None:
    foreign = CloudEvent({"id": "ext-1", "source": "/elsewhere", "type": "com.example.x"}, None)
    effect = make_event("data-arrived", ARRIVED, cause=foreign)
    assert effect.get_extension("runid") == "ext-1"


def test_with_lineage_fills_in_what_a_reply_lacks_and_keeps_what_it_sets() -> None:
    cause = make_event("training-requested", {"reason": "r"}, extensions={"runid": "run-1"})
    # Built without a cause: make_event gave it runid = its own id, which a reply must not keep.
    orphan = make_event("training-failed", {"reason": "x"}, extensions={"modelversion": "v9"})
    fixed = with_lineage(orphan, cause)
    assert fixed.get_extension("runid") == "run-1"
    assert fixed.get_extension("modelversion") == "v9"
    assert fixed.get_id() == orphan.get_id()
    assert fixed.get_data() == orphan.get_data()
    explicit = make_event("training-failed", {"reason": "x"}, extensions={"runid": "run-2"})
    assert with_lineage(explicit, cause).get_extension("runid") == "run-2"


@pytest.mark.parametrize("name", ["data.arrived", "dev.troupe.nope", "", "Data-Arrived"])
def test_unknown_types_are_refused_with_the_name_and_the_choices(name: str) -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        make_event(name, {})
    message = str(caught.value)
    assert repr(name) in message
    assert "data-arrived" in message  # says what would have been valid


def test_short_names_and_full_types_resolve_to_the_same_type() -> None:
    assert events.resolve("model-approved") is events.resolve(MODEL_APPROVED)
    assert events.is_known(TRAINING_REQUESTED) and not events.is_known("dev.troupe.x")


def test_invalid_data_names_the_missing_field() -> None:
    with pytest.raises(InvalidEventDataError) as caught:
        make_event("data-arrived", {"uri": "datasets/a.csv"})
    assert caught.value.fields == ["$.target"]
    assert "$.target" in str(caught.value)
    assert DATA_ARRIVED in str(caught.value)


def test_invalid_data_names_every_wrong_field() -> None:
    data = {"dataset_id": "not-a-sha", "uri": "u", "target": "t", "rows": 0,
            "features": ["a"], "stats_uri": "s"}
    with pytest.raises(InvalidEventDataError) as caught:
        make_event("data-validated", data)
    assert set(caught.value.fields) == {"$.dataset_id", "$.rows"}


def test_additional_properties_are_refused_where_the_schema_closes_them() -> None:
    with pytest.raises(InvalidEventDataError) as caught:
        make_event("data-arrived", {**ARRIVED, "colour": "blue"})
    assert "colour" in str(caught.value)


def test_validate_checks_a_decoded_event_against_its_schema() -> None:
    event = CloudEvent(
        {"id": "1", "source": "/s", "type": DATA_VALIDATED, "specversion": "1.0"},
        {"dataset_id": SHA},
    )
    with pytest.raises(InvalidEventDataError) as caught:
        validate(event)
    assert "$.uri" in caught.value.fields


@pytest.mark.parametrize(
    "name",
    ["RunId", "run-id", "run_id", "a" * 21, "", "id", "type", "data"],
)
def test_invalid_extension_names_are_refused_by_name(name: str) -> None:
    with pytest.raises(InvalidExtensionError) as caught:
        make_event("data-arrived", ARRIVED, extensions={name: "x"})
    assert caught.value.name == name
    assert repr(name) in str(caught.value)


@pytest.mark.parametrize("value", [1.5, None, ["a"], {"a": 1}, 2**31])
def test_invalid_extension_values_are_refused(value: object) -> None:
    with pytest.raises(InvalidExtensionError, match="okname"):
        make_event("data-arrived", ARRIVED, extensions={"okname": value})


def test_every_type_has_a_draft_2020_12_schema_with_its_id() -> None:
    for event_type in events.VOCABULARY:
        schema = events.schema_for(event_type.short)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == event_type.schema_uri
