"""A wait objective such as `200ms@p95`: 95% of requests start within 200 ms.

The same spelling serves the command line (`--slo`) and a Service's annotation, so it is
parsed once, here. The duration is a Go duration (what Knative's annotations use), read by
durationpy; the percentile is `p` and a number strictly between 0 and 100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import durationpy

from .errors import OutOfRangeError

_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")
_EXAMPLE = "a wait and a percentile such as 200ms@p95 or 1.5s@p99.9"


@dataclass(frozen=True)
class WaitSLO:
    """A share `quantile` of requests waits at most `wait` seconds before service starts."""

    wait: float  # seconds, >= 0
    quantile: float  # in (0, 1)

    def __post_init__(self) -> None:
        if not self.wait >= 0:
            raise OutOfRangeError(f"a wait SLO's wait must be >= 0 s, not {self.wait!r}")
        if not 0 < self.quantile < 1:
            raise OutOfRangeError(
                f"a wait SLO's quantile must lie strictly between 0 and 1, not {self.quantile!r}")

    @classmethod
    def parse(cls, text: str) -> WaitSLO:
        """`200ms@p95` -> WaitSLO(0.2, 0.95); anything else raises OutOfRangeError."""
        wait_text, at, percentile_text = text.strip().partition("@")
        if not at:
            raise OutOfRangeError(f"{text!r} is not a wait SLO: give {_EXAMPLE}")
        try:
            wait = durationpy.from_str(wait_text.strip()).total_seconds()
        except (ValueError, OverflowError):
            raise OutOfRangeError(
                f"{wait_text.strip()!r} in {text!r} is not a duration: give {_EXAMPLE}") from None
        if wait < 0:
            raise OutOfRangeError(f"the wait in {text!r} is negative: give {_EXAMPLE}")
        match = _PERCENTILE.fullmatch(percentile_text.strip())
        if match is None or not 0 < float(match.group(1)) < 100:
            raise OutOfRangeError(
                f"{percentile_text.strip()!r} in {text!r} is not a percentile between p0 and "
                f"p100 (both excluded): give {_EXAMPLE}")
        return cls(wait=wait, quantile=float(match.group(1)) / 100)

    def __str__(self) -> str:
        return f"{self.wait * 1000:g}ms@p{self.quantile * 100:g}"
