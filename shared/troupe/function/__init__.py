"""The function contract: `handle(event, ctx) -> CloudEvent | None`, served by `create_app`.

Functions import from here only: the submodules are this package's own layout.
"""

from .app import consumed_types, create_app
from .consumes import ANY, AnyEventType, ConsumedTypes, Consumes, UnconsumedTypeError
from .context import Context
from .data import data_object
from .errors import FunctionError, PermanentError, StatusError, TemporaryError
from .health import ReadyCheck, register_health
from .limits import limit_request_bodies, read_body_within
from .metrics import register_metrics
from .settings import Settings, SettingsError, env

__all__ = [
    "ANY",
    "AnyEventType",
    "ConsumedTypes",
    "Consumes",
    "Context",
    "FunctionError",
    "PermanentError",
    "ReadyCheck",
    "Settings",
    "SettingsError",
    "StatusError",
    "TemporaryError",
    "UnconsumedTypeError",
    "consumed_types",
    "create_app",
    "data_object",
    "env",
    "limit_request_bodies",
    "read_body_within",
    "register_health",
    "register_metrics",
]
