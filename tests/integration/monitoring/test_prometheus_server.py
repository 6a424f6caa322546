"""The launcher itself: live file_sd targets, queries, a clear error, a clean stop."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from troupe.local.observability.prometheus import PrometheusError, PrometheusServer, find_prometheus
from werkzeug.serving import make_server

pytestmark = pytest.mark.prometheus


@pytest.fixture()
def exposition() -> Iterator[str]:
    registry = CollectorRegistry()
    Gauge("launcher_test_answer", "a constant to scrape", registry=registry).set(42)
    server = make_server("127.0.0.1", 0, make_wsgi_app(registry), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_targets_change_while_it_runs_and_stop_is_clean(tmp_path: Path, exposition: str) -> None:
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    server = PrometheusServer(tmp_path, scrape_interval="1s")
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        server.set_targets("answers", [exposition], labels={"team": "serving"})
        server.wait_for_scrape("answers")
        sample = server.wait_for('launcher_test_answer{job="answers"}')[0]
        assert sample["metric"]["team"] == "serving"
        assert float(sample["value"][1]) == 42
        server.set_targets("answers", [])
        # A target that is gone gets staleness markers: its `up` series disappears.
        server.wait_for('up{job="answers"}', lambda result: not result)
        pid = server.pid
        assert pid is not None
    assert not server.running
    with pytest.raises(ProcessLookupError):  # really gone, not left behind
        os.kill(pid, 0)
    assert (tmp_path / "data").is_dir() and (tmp_path / "prometheus.log").exists()


def test_a_cross_site_post_cannot_stop_it(tmp_path: Path) -> None:
    """The lifecycle API is off: a page's POST to /-/quit or /-/reload does nothing."""
    if find_prometheus() is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    with PrometheusServer(tmp_path, scrape_interval="1s") as server:
        quit_answer = requests.post(f"{server.url}/-/quit", timeout=5)
        reload_answer = requests.post(f"{server.url}/-/reload", timeout=5)

        # 403: "Lifecycle API is not enabled" (with it, /-/quit answers 200 and exits).
        assert (quit_answer.status_code, reload_answer.status_code) == (403, 403)
        assert server.running
        assert requests.get(f"{server.url}/-/ready", timeout=5).status_code == 200


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path, binary=str(tmp_path / "no-such-prometheus"))
    with pytest.raises(PrometheusError, match="cannot run"):
        server.start()
    assert not server.running


def test_a_job_name_must_be_a_plain_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plain name"):
        PrometheusServer(tmp_path).set_targets("../escape", ["127.0.0.1:1"])
