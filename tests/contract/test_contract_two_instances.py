"""The same event delivered to two instances of a function at once, each its own process
(gunicorn, as Knative runs them) on one store: the handler runs once, both answer alike."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support.polling import wait_until
from troupe import events

# The handler says which process ran it in its reply, and holds on until the test has seen
# the event arrive at both instances. The WSGI wrapper notes each arrival.
MAIN = '''
import os
import pathlib
import time

from troupe.events import DATA_ARRIVED
from troupe.function import create_app

WORK = pathlib.Path(os.environ["TWIN_WORK"])


def note(name):
    with (WORK / name).open("a") as notes:
        notes.write(f"{os.getpid()}\\n")


def handle(event, ctx):
    note("runs")
    deadline = time.monotonic() + 60
    while not (WORK / "go").exists():  # a condition the test sets, polled
        if time.monotonic() > deadline:
            raise RuntimeError("the test never let the handler finish")
        time.sleep(0.01)
    return ctx.reply("data-rejected", {"uri": "twin.csv",
                                       "reasons": [f"handled by process {os.getpid()}"]})


events_app = create_app(handle, consumes=[DATA_ARRIVED])


def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        note("arrivals")
    return events_app(environ, start_response)
'''


def pids(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """Two gunicorn processes serving MAIN as the same function, on one store."""
    (tmp_path / "main.py").write_text(MAIN)
    env = {**os.environ, "K_SERVICE": "twin", "TWIN_WORK": str(tmp_path),
           "TROUPE_STORE_URL": (tmp_path / "store").as_uri(),
           "TROUPE_REPLY_WAIT_SECONDS": "60"}
    processes, logs = [], []
    try:
        for index in range(2):
            log = tmp_path / f"gunicorn-{index}.log"
            with log.open("wb") as sink:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "4",
                     "--bind", "127.0.0.1:0", "--chdir", str(tmp_path), "main:app"],
                    env=env, stdout=sink, stderr=subprocess.STDOUT))
            logs.append(log)

        def listening(log: Path, process: subprocess.Popen[bytes]) -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {log.read_text()}")
            found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text())
            return found.group(1) if found and "Booting worker" in log.read_text() else None

        urls = [wait_until(lambda log=log, process=process: listening(log, process), 30,
                           "gunicorn to listen") for log, process in zip(logs, processes,
                                                                         strict=True)]
        yield urls, tmp_path
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_the_handler_runs_once_and_both_instances_answer_the_same(
    twins: tuple[list[str], Path],
) -> None:
    urls, work = twins
    message = events.to_http_binary(events.make_event("data-arrived", {"uri": "twin.csv",
                                                                       "target": "y"}))

    def deliver(url: str) -> requests.Response:
        return requests.post(url, headers=message.headers, data=message.body, timeout=90)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = pool.map(deliver, urls)
        # Both instances have the event while one of them is handling it.
        wait_until(lambda: len(set(pids(work / "arrivals"))) == 2 and pids(work / "runs"),
                   30, lambda: f"arrivals {pids(work / 'arrivals')}, runs {pids(work / 'runs')}")
        (work / "go").touch()
        first, second = list(answers)

    assert len(pids(work / "runs")) == 1, f"the handler ran in {pids(work / 'runs')}"
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.content == second.content
    assert first.headers["ce-id"] == second.headers["ce-id"]
