"""Scale-from-zero latency of real functions in the local runtime, and its idle memory.

Cold start: the time from sending a request to a function at zero (through the runtime's
service front, which holds it while an instance starts) until the first answer, for the
real ingest (data-arrived), trainer (data-validated) and predictor (a KServe predict on a
trained model); every request is a new event, so nothing is answered from a reply cache.
COLD_STARTS per function, in two runtimes over one store: prewarmed (instances forked from
the template) and `--no-prewarm` (each instance a fresh gunicorn). Beside each, in the same
run and interleaved with it, its floor (coldstart_floors.py): a bare fork() of a process
with the modules loaded for the prewarmed figure, a bare Python process for the fresh one.

Memory: the resident set of an idle `troupe up` (every function at zero) of the same
project, with and without the template, against a bare Python interpreter.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml
from troupe.demo.data import FEATURES, TARGET, DriftingSource
from troupe.events import DATA_ARRIVED, DATA_VALIDATED, from_http, make_event, to_http_binary
from troupe.local.controlplane.kinds import SERVICE
from troupe.local.runtime import Runtime, RuntimeOptions
from troupe.local.serving.prewarm import modules_to_preload
from troupe.store import Store

from bench.coldstart_floors import (
    PreloadedProcess,
    Send,
    floor_env,
    fresh_process_answer,
    modules_of_main,
)
from bench.report import Figure

NAME = "coldstart"
COLD_STARTS = 12
FUNCTIONS = ("ingest", "trainer", "predictor")
REPO = Path(__file__).resolve().parents[1]
MODEL = "default"
# Every function scales to zero as soon as it is idle, so every request is a cold one.
RETENTION = {"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "0s"}
ENV = {"TROUPE_MODEL_NAME": MODEL}


# -- the project: the real function folders, one Service each --------------------------
def _project(root: Path) -> Path:
    for name in FUNCTIONS:
        shutil.copytree(REPO / "functions" / name, root / "functions" / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    services = [{"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                 "metadata": {"name": name},
                 "spec": {"template": {"metadata": {"annotations": RETENTION}, "spec": {
                     "containers": [{"image": name, "env": [
                         {"name": k, "value": v} for k, v in ENV.items()]}]}}}}
                for name in FUNCTIONS]
    (root / "knative").mkdir()
    (root / "knative" / "500-functions.yaml").write_text(yaml.safe_dump_all(services))
    (root / "eventing").mkdir()
    (root / "eventing" / "110-broker.yaml").write_text(yaml.safe_dump(
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": {"name": "default"}}))
    return root


# -- the requests: a new event each time --------------------------------------------------
def _event_sender(name: str, data: dict[str, Any]) -> Send:
    def send(url: str) -> requests.Response:
        message = to_http_binary(make_event(name, data, source="/bench/coldstart"))
        return requests.post(f"{url}/", data=message.body, headers=dict(message.headers),
                             timeout=120)
    return send


def _predict_sender(url: str) -> requests.Response:
    rows = [[0.1, -0.2, 0.3, 0.05]]
    return requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": rows},
                         timeout=120)


def _reply_data(answer: requests.Response) -> dict[str, Any]:
    data = from_http(dict(answer.headers), answer.content).get_data()
    assert isinstance(data, dict)
    return data


# -- the runtimes -------------------------------------------------------------------------
@contextmanager
def _runtime(project: Path, store_url: str, prewarm: bool) -> Iterator[Runtime]:
    runtime = Runtime(RuntimeOptions(project, data_plane=False, prometheus=False,
                                     store_url=store_url, prewarm=prewarm),
                      say=lambda line: print(f"  {line}", file=sys.stderr))
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


def _serve_model(runtime: Runtime, env: dict[str, str]) -> None:
    """A new predictor revision with the trained model, as the deployer would roll it out."""
    service = runtime.objects.get(SERVICE, "troupe", "predictor")
    service["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": k, "value": v} for k, v in env.items()]
    runtime.objects.replace(SERVICE, service)


def _url(runtime: Runtime, name: str) -> str:
    assert runtime.serving is not None
    url = runtime.serving.url_of("troupe", name)
    assert url is not None
    return url


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _settle(runtimes: tuple[Runtime, ...], name: str, resident: set[int]) -> None:
    """Wait until `name` is at zero in every runtime and no process of ours is starting or
    stopping, so that each path, floors included, is measured on the same quiet machine
    (an instance scaled down after one path would otherwise stop during the next)."""
    def quiet() -> bool:
        for runtime in runtimes:
            assert runtime.serving is not None
            if any(target[1] == name for target in runtime.serving.instance_targets()):
                return False
        return not set(_descendants()) - resident

    _wait(quiet, 60, f"{name} to scale to zero")


def _cold_answer(runtime: Runtime, name: str, send: Send) -> float:
    """Seconds for one request to `name` at zero."""
    started = time.perf_counter()
    answer = send(_url(runtime, name))
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed


def _descendants() -> list[int]:
    """Every process below this one, found by parent PID: unlike the per-thread
    /proc/<pid>/task/<tid>/children files, that does not vanish when a thread exits."""
    return [child.pid for child in psutil.Process().children(recursive=True)]


# -- the measurement ------------------------------------------------------------------------
Samples = dict[tuple[str, str], list[float]]  # (function, path) -> seconds


def _measure(projects: tuple[Path, Path], store_url: str) -> Samples:
    samples: Samples = {}
    store = Store(store_url)
    store.write_bytes("incoming/bench.csv", DriftingSource(seed=7).batch_csv(1500))
    arrived = {"uri": "incoming/bench.csv", "format": "csv", "target": TARGET,
               "features": list(FEATURES), "classes": [0, 1], "model": MODEL}
    preload = projects[0] / "preload.json"
    preload.write_text(json.dumps(modules_to_preload(projects[0])))
    with _runtime(projects[0], store_url, True) as warm, _runtime(
            projects[1], store_url, False) as fresh:
        # Not measured: the dataset and a model that the trainer and the predictor need.
        validated = _reply_data(_event_sender(DATA_ARRIVED, arrived)(_url(warm, "ingest")))
        trained = _reply_data(_event_sender(DATA_VALIDATED, validated)(_url(warm, "trainer")))
        envs = {name: dict(ENV) for name in FUNCTIONS}
        envs["predictor"] |= {"TROUPE_MODEL_URI": trained["artifact_uri"], "TROUPE_MODEL_SHA256":
                              trained["sha256"], "TROUPE_MODEL_VERSION": trained["version"]}
        for runtime in (warm, fresh):
            _serve_model(runtime, envs["predictor"])
        senders: dict[str, Send] = {"ingest": _event_sender(DATA_ARRIVED, arrived),
                                    "trainer": _event_sender(DATA_VALIDATED, validated),
                                    "predictor": _predict_sender}
        for name in FUNCTIONS:
            env = floor_env(warm.function_environment, name, envs[name])
            measured = _function_samples(name, (warm, fresh), projects[0] / "functions" / name,
                                         env, senders[name], preload)
            samples |= {(name, path): values for path, values in measured.items()}
            print(f"  {name}: " + ", ".join(f"{path} p50 {statistics.median(values) * 1000:.0f}"
                                            " ms" for path, values in measured.items()),
                  file=sys.stderr, flush=True)
    return samples


def _function_samples(name: str, runtimes: tuple[Runtime, Runtime], folder: Path,
                      env: dict[str, str], send: Send, preload: Path) -> dict[str, list[float]]:
    """COLD_STARTS seconds per path, the paths taken in turn so machine noise hits all alike."""
    warm, fresh = runtimes
    assert warm.template is not None
    modules = json.loads(preload.read_text()) + [[m, []] for m in modules_of_main(folder, env)]
    floor_preload = preload.with_name(f"preload-{name}.json")
    floor_preload.write_text(json.dumps(modules))
    preloaded = PreloadedProcess(folder, env, floor_preload)
    resident = {int(warm.template.describe()["pid"]), preloaded.pid}
    paths: dict[str, Callable[[], float]] = {
        "prewarmed": lambda: _cold_answer(warm, name, send),
        "fork floor": lambda: preloaded.fork_answer(send),
        "no prewarm": lambda: _cold_answer(fresh, name, send),
        "fresh floor": lambda: fresh_process_answer(folder, env, send),
    }
    measured: dict[str, list[float]] = {path: [] for path in paths}
    try:
        for _ in range(COLD_STARTS):
            for path, measure in paths.items():
                _settle(runtimes, name, resident)
                measured[path].append(measure())
    finally:
        preloaded.close()
    return measured


# -- idle memory ------------------------------------------------------------------------------
def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            continue  # gone meanwhile: it holds nothing
    return total / 2**20


def _idle_rss(project: Path, *options: str) -> tuple[float, float]:
    """RSS of an idle `troupe up` of `project`: the runtime process, and with every
    process under it (Kafka, Prometheus, the template)."""
    command = [sys.executable, "-c", "from troupe.cli import main; main()", "up",
               "--project", str(project), *options]
    state = project / ".troupe" / "runtime.json"
    state.unlink(missing_ok=True)
    runtime = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: state.is_file() and json.loads(state.read_text()).get("ready", False),
              180, "troupe up to be ready")
        time.sleep(1.0)  # let start-up garbage settle before reading memory (not a sync)
        everything = [runtime.pid, *(p.pid for p in
                                     psutil.Process(runtime.pid).children(recursive=True))]
        return _rss_mib([runtime.pid]), _rss_mib(everything)
    finally:
        runtime.terminate()
        runtime.wait(60)


def _bare_python_rss() -> float:
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.5)  # an interpreter's start-up, before reading its memory (not a sync)
        return _rss_mib([bare.pid])
    finally:
        bare.kill()
        bare.wait()


def run() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="coldstart-") as folder:
        # The same project twice: two runtimes cannot share a .troupe folder.
        projects = (_project(Path(folder) / "prewarmed"), _project(Path(folder) / "fresh"))
        store_url = (Path(folder) / "store").as_uri()
        samples = _measure(projects, store_url)
        alone, everything = _idle_rss(projects[0])
        _, everything_cold = _idle_rss(projects[0], "--no-prewarm")
        python = _bare_python_rss()
    ms = 1000.0

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]

    figures = []
    for name in FUNCTIONS:
        for path, floor, what in (("prewarmed", "fork floor", "bare fork() of a preloaded "
                                   "process"),
                                  ("no prewarm", "fresh floor", "bare python process")):
            for stat, of in (("p50", statistics.median), ("p95", p95)):
                figures.append(Figure(
                    NAME, f"scale-from-zero {stat}, {name}, {path}",
                    of(samples[(name, path)]) * ms, "ms",
                    f"{what}, {stat} of {COLD_STARTS}", of(samples[(name, floor)]) * ms))
    figures += [
        Figure(NAME, "idle RSS, runtime process", alone, "MiB", "bare python process", python),
        Figure(NAME, "idle RSS, runtime + Kafka + Prometheus + template", everything, "MiB",
               "bare python process", python),
        Figure(NAME, "idle RSS, runtime + Kafka + Prometheus, --no-prewarm", everything_cold,
               "MiB", "bare python process", python),
        Figure(NAME, "idle RSS, all processes, with the template", everything, "MiB",
               "the same, --no-prewarm", everything_cold),
    ]
    return figures


if __name__ == "__main__":
    from bench.report import render

    print(render(run()))
