"""Checks that keep the model's inputs inside its domain, with messages that say so."""

from __future__ import annotations

import math

from .errors import OutOfRangeError


def positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise OutOfRangeError(f"{name} must be a finite number > 0, not {value!r}")
    return float(value)


def non_negative(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise OutOfRangeError(f"{name} must be a finite number >= 0, not {value!r}")
    return float(value)


def server_count(servers: int) -> int:
    if isinstance(servers, bool) or not isinstance(servers, int) or servers < 1:
        raise OutOfRangeError(f"servers must be a whole number >= 1, not {servers!r}")
    return servers


def quantile_in_range(q: float) -> float:
    if not (isinstance(q, (int, float)) and 0 < q < 1):
        raise OutOfRangeError(f"a quantile must lie strictly between 0 and 1, not {q!r}")
    return float(q)
