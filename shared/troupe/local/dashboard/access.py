"""Who may use the dashboard: the runtime's owner, who holds the API's bearer token (the
runtime hands it over; it is the kubeconfig's).

A browser presents it as a cookie, set by the link `troupe up` and `troupe dashboard`
print (`/login?token=...`); programs (the functions' span exporters, the CLI) send it as
`Authorization: Bearer`. A request whose Host is not this loopback address is refused
first (DNS rebinding); a POST made with the cookie must also carry the CSRF token the
page was given, since a cookie goes along with requests other sites make.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from http.cookies import CookieError, SimpleCookie
from typing import Final

from troupe.local.host.host_header import LOOPBACK_NAMES

COOKIE: Final = "troupe_dashboard"
CSRF_HEADER: Final = "X-CSRF-Token"


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


@dataclass(frozen=True)
class Access:
    token: str
    port: int

    @property
    def csrf_token(self) -> str:
        """Derived from the token: the page gets it from the server, another site cannot."""
        return hmac.new(self.token.encode(), b"troupe-dashboard-csrf", hashlib.sha256).hexdigest()

    def refusal(self, method: str, headers: Mapping[str, str]) -> Refusal | None:
        """Why a request may not go on, or None: Host (403), token (401), CSRF (403).
        `headers` has lower-case names."""
        if not self.host_allowed(headers.get("host")):
            return Refusal(403, "this dashboard answers only on its loopback address: open "
                                "the URL `troupe dashboard` prints")
        bearer = _bearer(headers.get("authorization"))
        if bearer is not None:
            if _same(bearer, self.token):
                return None
            return Refusal(401, "the bearer token is not this runtime's")
        if not _same(_cookie(headers.get("cookie")), self.token):
            return Refusal(401, "open the dashboard with the link `troupe dashboard` prints "
                                "(it carries the token)")
        csrf = headers.get(CSRF_HEADER.lower())
        if method not in ("GET", "HEAD") and not _same(csrf, self.csrf_token):
            return Refusal(403, f"a change needs the page's {CSRF_HEADER} header: reload the "
                                "page and try again")
        return None

    @cached_property
    def _hosts(self) -> frozenset[str]:
        # Stricter than the other listeners (host_header.py): the port too, since a link
        # to the dashboard always carries it.
        return frozenset(f"{name}:{self.port}" for name in LOOPBACK_NAMES)

    def host_allowed(self, host: str | None) -> bool:
        return host in self._hosts

    def login_allowed(self, presented: str | None) -> bool:
        return _same(presented, self.token)

    def login_cookie(self) -> str:
        # HttpOnly: no script reads it; Strict: no other site's request carries it.
        return f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"


def _same(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _cookie(header: str | None) -> str | None:
    if not header:
        return None
    try:
        jar = SimpleCookie(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None
