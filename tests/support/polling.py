"""Wait on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_until(condition: Callable[[], Any], timeout: float = 15.0,
               message: str | Callable[[], str] = "", *, interval: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy and return that; fail the test
    with `message` (or what `message()` says then) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            said = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout} s waiting for {said or condition}")
        time.sleep(interval)
