"""The Host check every runtime listener shares: loopback names, with any port or none."""

from __future__ import annotations

import pytest
from troupe.local.host.host_header import is_loopback_host, loopback_hosts


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.1:8080",
                                  "localhost:1", "[::1]:65535", "LocalHost:80"])
def test_loopback_names_pass(host: str) -> None:
    assert is_loopback_host(host)
    assert is_loopback_host(host, loopback_hosts(8080))


@pytest.mark.parametrize("host", [None, "", "attacker.example", "attacker.example:80",
                                  "127.0.0.1.nip.io", "localhost.attacker.example",
                                  "127.0.0.2", "::1", "[::1", "[::2]:80", "localhost:",
                                  "localhost:¹", "localhost:123456", "localhost:80:80",
                                  "127.0.0.1@attacker.example", "2130706433"])
def test_anything_else_is_refused(host: str | None) -> None:
    assert not is_loopback_host(host)
    assert not is_loopback_host(host, loopback_hosts(8080))
