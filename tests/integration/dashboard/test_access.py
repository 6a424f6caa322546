"""Only the runtime's owner gets in: every page and API answers 401 without the API's token,
a foreign Host gets 403 even with it, and the login link sets it as a strict cookie."""

from __future__ import annotations

import pytest
import requests

from .conftest import DemoRuntime

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

PAGES = ["/", "/static/app.js", "/static/style.css", "/static/favicon.svg", "/api/graph",
         "/api/runs", "/api/runs/some-run", "/api/models", "/api/dead-letters", "/api/stream",
         "/nothing-here"]
CHANGES = ["/api/dead-letters/replay", "/v1/traces"]


def test_without_the_token_every_page_and_api_answers_401(demo_runtime: DemoRuntime) -> None:
    base = demo_runtime.runtime.dashboard_url.split("/login")[0]
    for path in PAGES:
        answer = requests.get(base + path, timeout=10, stream=True)
        assert answer.status_code == 401, path
    for path in CHANGES:
        assert requests.post(base + path, data=b"{}", timeout=10).status_code == 401, path
    wrong = requests.get(base + "/api/runs", headers={"Authorization": "Bearer not-it"},
                         cookies={"troupe_dashboard": "not-it"}, timeout=10)
    assert wrong.status_code == 401
    assert requests.get(base + "/login?token=not-it", timeout=10).status_code == 401


def test_a_foreign_host_is_refused_even_with_the_token(demo_runtime: DemoRuntime) -> None:
    dashboard = demo_runtime.runtime.dashboard
    assert dashboard is not None
    token = dashboard.access.token
    for host in ("evil.example", f"evil.example:{dashboard.access.port}", "127.0.0.1:1"):
        for path in ("/", "/api/runs", f"/login?token={token}"):
            answer = requests.get(dashboard.url + path, timeout=10,
                                  headers={"Host": host, "Authorization": f"Bearer {token}"})
            assert answer.status_code == 403, (host, path)


def test_the_login_link_sets_a_strict_cookie_that_opens_every_page(
    demo_runtime: DemoRuntime,
) -> None:
    session = requests.Session()
    login = session.get(demo_runtime.runtime.dashboard_url, allow_redirects=False, timeout=10)
    assert login.status_code == 303 and login.headers["Location"] == "/"
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    base = demo_runtime.runtime.dashboard_url.split("/login")[0]
    opened = [path for path in PAGES if path not in ("/api/stream", "/nothing-here",
                                                     "/api/runs/some-run")]
    for path in [*opened, f"/api/runs/{demo_runtime.runid}"]:
        answer = session.get(base + path, timeout=30)
        assert answer.status_code == 200, path
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert session.get(base + "/nothing-here", timeout=10).status_code == 404
    assert session.get(base + "/api/runs/some-run", timeout=10).status_code == 404
