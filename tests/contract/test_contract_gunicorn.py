"""A function app under gunicorn with two workers: /metrics adds up every worker's
events when PROMETHEUS_MULTIPROC_DIR is set (prometheus-client's multiprocess mode)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from troupe import events

MAIN = '''
import time

from troupe.events import DATA_ARRIVED
from troupe.function import create_app


def handle(event, ctx):
    time.sleep(0.05)  # a handler that takes a while, so both sync workers get requests
    return None


app = create_app(handle, consumes=[DATA_ARRIVED])
'''


def wait_for(condition: Callable[[], str | None], timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)  # polling interval, not synchronisation: the condition decides
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def gunicorn_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    (tmp_path / "main.py").write_text(MAIN)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    log = tmp_path / "gunicorn.log"
    env = {
        **os.environ,
        "K_SERVICE": "multi",
        "TROUPE_STORE_URL": (tmp_path / "store").as_uri(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:0",
             "--chdir", str(tmp_path), "main:app"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        def listening() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {log.read_text()}")
            match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text())
            booted = len(re.findall(r"Booting worker", log.read_text()))
            return match.group(1) if match and booted >= 2 else None

        yield wait_for(listening, 30, "gunicorn to listen with two workers"), metrics_dir
    finally:
        process.terminate()
        process.wait(timeout=30)


def total_events(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "troupe_events_total"
    )


def test_metrics_add_up_across_workers(gunicorn_url: tuple[str, Path]) -> None:
    url, metrics_dir = gunicorn_url
    sent = 24

    def deliver(_: int) -> int:
        message = events.to_http_binary(
            events.make_event("data-arrived", {"uri": "x.csv", "target": "y"})
        )
        response = requests.post(url, headers=message.headers, data=message.body, timeout=30)
        return response.status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(deliver, range(sent))) == [202] * sent
    # Each worker that counted something keeps its own file: both took events.
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2
    for _ in range(4):  # scrapes land on either worker; each must see every event
        assert total_events(url) == sent
