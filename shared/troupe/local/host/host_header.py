"""The Host check of the runtime's listeners, against DNS rebinding.

Every listener binds to 127.0.0.1, but a web page can still reach it: the page's own name
is made to resolve to 127.0.0.1 (DNS rebinding), and the browser then sends the page's
requests, with the page's name in `Host`, to the runtime. So the API, the broker ingress
and the service fronts answer only requests whose Host is a loopback name, as
`kubectl proxy` accepts only `localhost`, `127.0.0.1` and `[::1]` by default. The port
is not compared: a tunnel (`ssh -L 9000:127.0.0.1:<port>`) keeps the name and changes it.
"""

from __future__ import annotations

from typing import Final

LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "[::1]"})
_MAX_PORT_DIGITS: Final = 5


def loopback_hosts(port: int) -> frozenset[str]:
    """The Host values a listener on `port` meets every time, for a set lookup first."""
    return LOOPBACK_NAMES | {f"{name}:{port}" for name in LOOPBACK_NAMES}


def is_loopback_host(value: str | None, expected: frozenset[str] = LOOPBACK_NAMES) -> bool:
    """Whether a Host header names this machine's loopback: `expected` (loopback_hosts)
    answers the usual values at the cost of a set lookup; anything else is parsed."""
    if value in expected:
        return True
    if not value:
        return False
    name, colon, port = value.lower().rpartition(":")
    if colon and port.isascii() and port.isdigit() and len(port) <= _MAX_PORT_DIGITS:
        return name in LOOPBACK_NAMES
    return value.lower() in LOOPBACK_NAMES


def foreign_host_message(value: str | None) -> str:
    """The answer to a request whose Host is not loopback: what was wrong, what to do."""
    shown = "no Host header" if not value else f"Host {value!r}"
    return (f"{shown} is not this machine's loopback: the runtime answers only requests "
            "for 127.0.0.1, localhost or [::1] (a guard against DNS rebinding); send the "
            "request to http://127.0.0.1:<port>")
