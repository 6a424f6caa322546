"""One JSON line per delivered event on stderr, for humans and log collectors alike."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Final, TextIO

EVENT_LOGGER: Final = "troupe.function.events"


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time, so redirections (tests) see it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def event_logger(level: str) -> logging.Logger:
    """The logger of event lines: its own stderr handler, not propagated, set up once."""
    logger = logging.getLogger(EVENT_LOGGER)
    if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
        handler = _CurrentStderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.getLevelName(level.upper()) if isinstance(level, str) else level)
    return logger


def log_event(logger: logging.Logger, status: int, fields: dict[str, Any]) -> None:
    """Successes at INFO, refusals (4xx) at WARNING, failures (5xx) at ERROR."""
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    logger.log(level, json.dumps(fields, default=str, separators=(",", ":")))
