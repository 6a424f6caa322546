"""Where the runtime may send events: this machine, unless its user says otherwise.

A Trigger's subscriber receives every event its filter passes, and a dead-letter sink
every event that failed; so a Trigger made by anyone who reached the API could copy the
whole event log off the machine. The runtime therefore delivers only to its own Services
and Brokers (a `ref`) and to loopback addresses, unless `troupe up
--allow-external-sinks` was given. The check runs on every create and update, from the
manifests or the API, and refuses with the field (422):

- a `uri` whose host is a literal IP address must be a loopback one (127.0.0.0/8, ::1);
- `localhost` is loopback by name (RFC 6761); any other name is refused, since what it
  resolves to can change after the check (DNS rebinding works both ways);
- a `ref` resolves to the runtime's own listeners, on 127.0.0.1; a `uri` beside it is a
  path on them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from troupe.local.controlplane.kinds import (
    BROKER,
    KAFKASOURCE,
    PINGSOURCE,
    TRIGGER,
    Kind,
    Obj,
    field_at,
)
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.errors import InvalidFieldError

# The destinations of each kind, by field path.
DESTINATIONS: Final[dict[Kind, tuple[str, ...]]] = {
    TRIGGER: ("spec.subscriber", "spec.delivery.deadLetterSink"),
    BROKER: ("spec.delivery.deadLetterSink",),
    PINGSOURCE: ("spec.sink",),
    KAFKASOURCE: ("spec.sink", "spec.delivery.deadLetterSink"),
}
_SCHEMES: Final = ("http", "https")


def add_sink_checks(objects: ObjectStore, allow_external: bool) -> None:
    if allow_external:
        return
    for kind, paths in DESTINATIONS.items():
        objects.add_validator(kind, _check(paths))


def _check(paths: tuple[str, ...]) -> Callable[[Obj], None]:
    def check(obj: Obj) -> None:
        for path in paths:
            destination = field_at(obj, path)
            if isinstance(destination, Mapping) and destination.get("ref") is None:
                check_local_uri(destination.get("uri"), f"{path}.uri")
    return check


def check_local_uri(uri: Any, field: str) -> None:
    """InvalidFieldError unless `uri` is an http(s) URL on this machine's loopback."""
    if not isinstance(uri, str) or not uri:
        return  # a missing destination is the runtime's other checks' to refuse
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError as error:
        raise InvalidFieldError(field, f"{uri!r} is not a URL: {error}") from None
    if parts.scheme not in _SCHEMES or not host:
        raise InvalidFieldError(field, f"{uri!r} must be an http:// URL, e.g. "
                                "http://127.0.0.1:9000/")
    if not _is_loopback(host):
        raise InvalidFieldError(field, f"{uri!r} is not on this machine: locally events go "
                                "only to the runtime's own Services and Brokers (a ref) and "
                                "to loopback addresses (127.0.0.1, [::1], localhost); start "
                                "the runtime with `troupe up --allow-external-sinks` to send "
                                "them elsewhere")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: what it resolves to may change after this check


