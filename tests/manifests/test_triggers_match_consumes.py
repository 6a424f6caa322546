"""The Triggers in eventing/ and the event types each function declares agree both ways.

A Trigger that delivers a type its subscriber does not declare would be answered 422 and
dead-letter every event; a declared type without a Trigger is never delivered. The
declarations are read from the apps that each main.py builds, as gunicorn builds them,
without serving them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.functions import load_main
from troupe.events import VOCABULARY
from troupe.function import ConsumedTypes, consumed_types

REPO = Path(__file__).resolve().parents[2]
FOLDERS = sorted(p.name for p in (REPO / "functions").iterdir() if (p / "main.py").is_file())
TRIGGERS = [doc for path in sorted((REPO / "eventing").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc and doc["kind"] == "Trigger"]


@pytest.fixture(scope="module")
def declared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ConsumedTypes]]:
    """What each function's app consumes, by folder (the folder is the Service's name)."""
    store = tmp_path_factory.mktemp("store").as_uri()
    found = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TROUPE_STORE_URL", store)
        for folder in FOLDERS:
            patch.setenv("K_SERVICE", folder)
            found[folder] = consumed_types(load_main(folder).app)
    yield found


def routed(trigger: dict[str, Any]) -> tuple[str, str]:
    """(subscriber, the type its filter selects)."""
    spec = trigger["spec"]
    return spec["subscriber"]["ref"]["name"], spec["filter"]["attributes"]["type"]


def test_every_trigger_delivers_a_type_its_subscriber_declares(
    declared: dict[str, ConsumedTypes],
) -> None:
    assert TRIGGERS
    for trigger in TRIGGERS:
        subscriber, event_type = routed(trigger)
        assert subscriber in declared, f"{trigger['metadata']['name']}: no function {subscriber}"
        assert declared[subscriber].admits(event_type), (
            f"Trigger {trigger['metadata']['name']} delivers {event_type} to {subscriber}, "
            f"which declares {sorted(declared[subscriber].types or ())}"
        )


def test_every_declared_type_has_a_trigger(declared: dict[str, ConsumedTypes]) -> None:
    triggered = {routed(trigger) for trigger in TRIGGERS}
    for folder, consumes in declared.items():
        for event_type in sorted(consumes.types or ()):
            assert (folder, event_type) in triggered, f"{folder} declares {event_type}"


def test_declarations_match_the_vocabulary_table(declared: dict[str, ConsumedTypes]) -> None:
    by_consumer: dict[str, set[str]] = {}
    for event_type in VOCABULARY:
        for consumer in event_type.consumed_by:
            by_consumer.setdefault(consumer, set()).add(event_type.type)
    typed = {folder: set(c.types) for folder, c in declared.items() if c.types}
    assert typed == by_consumer


def test_only_the_dead_letter_sink_takes_any_type_and_the_predictor_takes_none(
    declared: dict[str, ConsumedTypes],
) -> None:
    assert [folder for folder, consumes in declared.items() if consumes.any] == ["dead-letters"]
    assert declared["predictor"].types == frozenset()
    subscribers = {routed(trigger)[0] for trigger in TRIGGERS}
    assert not subscribers & {"dead-letters", "predictor"}
