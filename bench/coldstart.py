"""Scale-from-zero latency of the local runtime, and its idle memory.

Cold start: the time from sending a CloudEvent to a scaled-to-zero service until its
handler has answered, over 20 cold starts. Baseline: the same function started as a
bare `gunicorn --chdir ... main:app` process, timed from launch until it answers the
same request. Memory: the resident set of an idle `troupe up` (every service at zero)
against a bare Python interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
import yaml
from troupe.events import DATA_ARRIVED, make_event, to_http_binary
from troupe.local.host.loopback_http import PortReservation
from troupe.local.runtime import Runtime, RuntimeOptions
from troupe.local.serving.instance import gunicorn_command

from bench.report import Figure

COLD_STARTS = 20
# A minimal troupe function: the app factory, the event codecs and settings, like every
# real function; the handler itself does nothing, so the figure is pure start-up cost.
HANDLER = '''
from troupe.events import DATA_ARRIVED
from troupe.function import create_app

def handle(event, ctx):
    return None

app = create_app(handle, consumes=[DATA_ARRIVED])
'''


def _project(root: Path) -> Path:
    (root / "functions" / "noop").mkdir(parents=True)
    (root / "functions" / "noop" / "main.py").write_text(HANDLER)
    (root / "knative").mkdir()
    manifest = {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                "metadata": {"name": "noop"},
                "spec": {"template": {"metadata": {"annotations": {
                    "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "0s"}},
                    "spec": {"containers": [{"image": "noop"}]}}}}
    broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
              "metadata": {"name": "default"}}
    (root / "knative" / "300-noop.yaml").write_text(yaml.safe_dump(manifest))
    (root / "eventing").mkdir()
    (root / "eventing" / "300-broker.yaml").write_text(yaml.safe_dump(broker))
    return root


def _event_request() -> tuple[bytes, dict[str, str]]:
    event = make_event(DATA_ARRIVED, {"uri": "file:///data.csv", "target": "y"},
                       source="/bench/coldstart")
    message = to_http_binary(event)
    return message.body, dict(message.headers)


def _post_event(url: str, request: tuple[bytes, dict[str, str]]) -> int:
    body, headers = request
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


def _bare_gunicorn_start(folder: Path, env: dict[str, str]) -> float:
    """Launch gunicorn as the runtime would and time it until it answers the event.

    The port is probed with plain connects (cheap, so the probe steals no CPU from the
    booting process), then the event is sent: the fastest a bare start can be observed.
    """
    request = _event_request()
    reservation = PortReservation()  # as the runtime does: no other process takes the port
    port = reservation.port
    started = time.perf_counter()
    process = subprocess.Popen(gunicorn_command(folder, port, threads=16, timeout=300),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError("the bare gunicorn exited while starting") from None
                time.sleep(0.002)
        status = _post_event(f"http://127.0.0.1:{port}/", request)
        elapsed = time.perf_counter() - started
        if status != 202:
            raise RuntimeError(f"the bare function answered {status}")
        return elapsed
    finally:
        process.terminate()
        process.wait()
        reservation.release()


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _cold_starts(project: Path) -> tuple[list[float], list[float]]:
    runtime = Runtime(RuntimeOptions(project, data_plane=False, prometheus=False),
                      say=lambda _: None)
    runtime.start()
    try:
        serving = runtime.serving
        assert serving is not None
        url = serving.url_of("troupe", "noop")
        assert url is not None
        env = {**os.environ, "TROUPE_STORE_URL": (project / ".troupe" / "store").as_uri(),
               "K_SERVICE": "noop"}
        cold, bare = [], []
        for _ in range(COLD_STARTS):  # interleaved, so machine noise hits both alike
            # Scaled to zero and the process gone: a stopping gunicorn must not compete
            # for the CPU with the next start.
            _wait(lambda: not serving.instance_targets() and not _children(os.getpid()), 30,
                  "scale to zero")
            request = _event_request()
            started = time.perf_counter()
            status = _post_event(url, request)
            cold.append(time.perf_counter() - started)
            if status != 202:
                raise RuntimeError(f"the cold service answered {status}")
            _wait(lambda: not serving.instance_targets() and not _children(os.getpid()), 30,
                  "scale to zero")
            bare.append(_bare_gunicorn_start(project / "functions" / "noop", env))
        return cold, bare
    finally:
        runtime.stop()


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):  # gone meanwhile: it holds nothing
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def _children(pid: int) -> list[int]:
    """Every process below `pid`. psutil finds them by their parent PID (/proc/<pid>/stat),
    which a process keeps whatever its threads do; the per-thread `task/<tid>/children`
    files vanish when a thread exits while they are read, and made this benchmark fail."""
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _idle_rss(project: Path) -> tuple[float, float, float]:
    """RSS of an idle `troupe up` (itself; with Kafka and Prometheus) and of bare python."""
    command = [sys.executable, "-c", "from troupe.cli import main; main()", "up",
               "--project", str(project)]
    runtime = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    state = project / ".troupe" / "runtime.json"
    try:
        _wait(lambda: state.is_file() and json.loads(state.read_text()).get("ready", False),
              120, "troupe up to be ready")
        time.sleep(1.0)  # let start-up garbage settle before reading memory (not a sync)
        alone = _rss_mib([runtime.pid])
        everything = _rss_mib([runtime.pid, *_children(runtime.pid)])
        return alone, everything, _rss_mib([bare.pid])
    finally:
        bare.kill()
        runtime.terminate()
        runtime.wait(60)


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="coldstart-") as folder:
        project = _project(Path(folder))
        cold, bare = _cold_starts(project)
        alone, everything, python = _idle_rss(project)
    ms = 1000.0

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]

    baseline = f"bare gunicorn start ({COLD_STARTS} runs)"
    return [
        Figure("coldstart", "scale-from-zero p50", statistics.median(cold) * ms, "ms",
               baseline + " p50", statistics.median(bare) * ms),
        Figure("coldstart", "scale-from-zero p95", p95(cold) * ms, "ms",
               baseline + " p95", p95(bare) * ms),
        Figure("coldstart", "idle RSS, runtime process", alone, "MiB",
               "bare python process", python),
        Figure("coldstart", "idle RSS, runtime + Kafka + Prometheus", everything, "MiB",
               "bare python process", python),
    ]


if __name__ == "__main__":
    from bench.report import render

    print(render(run()))
