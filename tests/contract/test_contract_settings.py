"""Settings.from_env: configuration handed to handlers, built from a plain mapping."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
from troupe.function import Settings, SettingsError, env


@dataclass(frozen=True)
class TrainerSettings(Settings):
    window: int = 3
    min_accuracy: float = 0.8
    canary: bool = False
    features: tuple[str, ...] = ()
    champion: str | None = None
    bucket: str = env("MODEL_BUCKET", "models")


def test_fields_come_from_troupe_variables_and_knative_ones() -> None:
    settings = TrainerSettings.from_env({
        "K_SERVICE": "trainer", "TROUPE_WINDOW": "5", "TROUPE_MIN_ACCURACY": "0.9",
        "TROUPE_CANARY": "yes", "TROUPE_FEATURES": "a, b,,c", "MODEL_BUCKET": "ml",
        "TROUPE_STORE_URL": "s3://bucket/prefix", "UNRELATED": "ignored",
    })
    assert settings.service == "trainer"
    assert settings.event_source == "/troupe/trainer"
    assert (settings.window, settings.min_accuracy, settings.canary) == (5, 0.9, True)
    assert settings.features == ("a", "b", "c")
    assert settings.bucket == "ml" and settings.champion is None
    assert settings.store_url == "s3://bucket/prefix"


def test_defaults_apply_when_the_environment_is_silent() -> None:
    settings = TrainerSettings.from_env({})
    assert settings == TrainerSettings()
    assert settings.store_url == "file://./.troupe/store"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.service = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value"),
    [("TROUPE_WINDOW", "three"), ("TROUPE_CANARY", "maybe"), ("TROUPE_MIN_ACCURACY", "high")],
)
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        TrainerSettings.from_env({name: value})
    assert name in str(caught.value) and repr(value) in str(caught.value)
