"""The function contract: `handle(event, ctx) -> CloudEvent | None`, served by `create_app`."""

from .app import create_app
from .context import Context
from .errors import FunctionError, PermanentError, TemporaryError
from .settings import Settings, SettingsError, env

__all__ = [
    "Context",
    "FunctionError",
    "PermanentError",
    "Settings",
    "SettingsError",
    "TemporaryError",
    "create_app",
    "env",
]
