"""Prometheus started by the runtime scrapes function processes as they come and go."""

from __future__ import annotations

import shutil
import stat
from typing import Any

import pytest
import requests
from support.polling import wait_until

from .conftest import StartRuntime, service, service_status

pytestmark = [pytest.mark.prometheus,
              pytest.mark.skipif(shutil.which("prometheus") is None,
                                 reason="the prometheus binary is not on PATH")]


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    body = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_reports_up_for_a_running_function_and_the_runtime_metrics(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo")], prometheus=True)
    prometheus = runtime.status()["prometheus"]
    assert prometheus, "the runtime did not start prometheus"

    assert requests.get(service_status(runtime, "echo")["url"], timeout=30).status_code == 200

    up = wait_until(lambda: [r for r in _query(prometheus, 'up{job="echo"}')
                             if r["value"][1] == "1"], 30, 'up{job="echo"} == 1')
    assert up[0]["metric"]["service"] == "echo"
    cold = wait_until(lambda: _query(prometheus, "troupe_runtime_cold_starts_total"), 30,
                      "the runtime's cold-start counter")
    assert float(cold[0]["value"][1]) >= 1
    active = _query(prometheus, "troupe_runtime_active_instances")
    assert {r["metric"]["service"] for r in active} == {"echo"}
    # The runtime's own metrics are on the API: scraped over HTTPS with the run's token,
    # which stays out of Prometheus' configuration, in an owner-only file.
    runtime_up = _query(prometheus, 'up{job="troupe-runtime"}')
    assert [r["value"][1] for r in runtime_up] == ["1"]
    workdir = runtime.options.workdir / "prometheus"
    assert runtime.api_token not in (workdir / "prometheus.yml").read_text()
    assert stat.S_IMODE((workdir / "troupe-runtime.token").stat().st_mode) == 0o600
