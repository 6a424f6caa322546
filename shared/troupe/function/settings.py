"""Configuration, built once from the environment and handed to handlers frozen.

Handlers never read os.environ: they get a Settings (or a subclass of their own) through
their Context, so a test builds one from a plain dict.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def env(name: str, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    """A settings field read from the environment variable `name` instead of TROUPE_<FIELD>."""
    return field(default=default, metadata={"env": name}, **kwargs)


@dataclass(frozen=True)
class Settings:
    """What every function needs. Subclass it (frozen too) to add a function's own fields.

    Each field is read from TROUPE_<FIELD NAME IN CAPITALS> unless it names its variable
    with `env(...)`; Knative's own K_SERVICE and K_REVISION are read as they are.
    """

    service: str = env("K_SERVICE", "troupe-function")
    revision: str = env("K_REVISION", "")
    store_url: str = "file://./.troupe/store"
    # For s3:// stores that are not AWS itself (MinIO, Ceph...); credentials come the usual
    # AWS way (AWS_ACCESS_KEY_ID... from a Secret, or the pod's role).
    s3_endpoint_url: str = ""
    s3_region: str = ""
    log_level: str = "INFO"
    # The `source` of the events this function replies with; default /troupe/<service>.
    source: str = ""
    # The reply cache (idempotency.py): how long an answer is kept for redeliveries, how
    # long a delivery's claim on its event lasts unless its process renews it, and how long
    # a concurrent delivery of the same event waits for the answer before a 503.
    reply_ttl_seconds: float = 7 * 24 * 3600.0
    reply_lease_seconds: float = 30.0
    reply_wait_seconds: float = 5.0
    # Larger request bodies are refused (413) before they are read: the Knative Kafka
    # Broker's own limit on an event (Kafka's default message.max.bytes).
    max_event_bytes: int = 1024 * 1024

    @property
    def event_source(self) -> str:
        return self.source or f"/troupe/{self.service}"

    # -- checks for __post_init__: each names the variable and what it may hold ----------
    def variable_of(self, name: str) -> str:
        """The environment variable the field `name` is read from."""
        found = next(f for f in dataclasses.fields(self) if f.name == name)
        return str(found.metadata.get("env") or f"TROUPE_{name.upper()}")

    def require_at_least(self, name: str, minimum: float, why: str = "") -> None:
        value = getattr(self, name)
        if value < minimum:
            raise SettingsError(f"{self.variable_of(name)} must be at least {minimum}"
                                f"{f' ({why})' if why else ''}, not {value}")

    def require_within(self, name: str, low: float, high: float, *,
                       inclusive: bool = True) -> None:
        value = getattr(self, name)
        inside = low <= value <= high if inclusive else low < value < high
        if not inside:
            bounds = f"[{low}, {high}]" if inclusive else f"({low}, {high})"
            raise SettingsError(f"{self.variable_of(name)} must lie in {bounds}, not {value}")

    def require_one_of(self, name: str, choices: Iterable[str]) -> None:
        value, allowed = getattr(self, name), list(choices)
        if value not in allowed:
            raise SettingsError(f"{self.variable_of(name)}={value!r} is unknown: use one of "
                                f"{', '.join(allowed)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Build the settings from `environ` (os.environ when None), converting each value
        to its field's type; a value that does not convert raises SettingsError naming it."""
        if environ is None:
            import os

            environ = os.environ
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f.metadata.get("env") or f"TROUPE_{f.name.upper()}"
            if name in environ:
                values[f.name] = _convert(name, environ[name], hints[f.name])
        return cls(**values)


def _convert(name: str, raw: str, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if raw == "":
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError("expected true or false")
        if hint in (int, float, str):
            return hint(raw.strip() if hint is not str else raw)
        if origin is tuple:
            item = args[0] if args else str
            return tuple(item(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r} is not a valid {_describe(hint)}: {error}") from None
    raise SettingsError(f"{name}: settings of type {hint!r} cannot be read from the environment")


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
