"""Knative's conventions that more than one part of the runtime reads: the namespace
a manifest without one lands in, and the two duration formats Knative's resources use.

Knative writes durations two ways: annotations and Go-side settings take Go durations
(`scale-to-zero-pod-retention-period: 1m30s`), while `delivery.backoffDelay` and
`delivery.timeout` are ISO 8601 (`PT0.5S`). Each parser names its format.
"""

from __future__ import annotations

import re
from typing import Final

from troupe.local.errors import InvalidResourceError

DEFAULT_NAMESPACE: Final = "troupe"

_GO_UNITS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_GO_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_ISO8601: Final = re.compile(
    r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration ('30s', '1m30s', '500ms', '1h'); ValueError otherwise."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"{text!r} is not a duration like '30s' or '1m30s'")
    return sum(float(n) * _GO_UNITS[u] for n, u in parts)


def parse_iso8601_duration(text: str, resource: str, field_name: str) -> float:
    """Seconds in an ISO 8601 duration such as `PT0.5S`, `PT2M` or `P1DT1H`; an invalid
    one raises InvalidResourceError naming the resource and field."""
    match = _ISO8601.match(text.strip().upper()) if isinstance(text, str) else None
    if not match or text.strip().upper() in ("P", "PT"):
        raise InvalidResourceError(
            resource, field_name, f"{text!r} is not an ISO 8601 duration (e.g. PT0.2S, PT1M)"
        )
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return (parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60
            + parts.get("s", 0))
