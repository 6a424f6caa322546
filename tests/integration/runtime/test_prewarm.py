"""Prewarmed instances: forked from the template, they answer as fresh processes do, keep
nothing from one another, die on scale-down, and a function the template cannot help
still starts. Real processes throughout: the template, gunicorn, loopback HTTP."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from support.polling import wait_until
from troupe.local.controlplane.kinds import REVISION
from troupe.local.runtime import Runtime
from troupe.local.serving.prewarm import InstanceTemplate, modules_to_preload

from .conftest import StartRuntime, service, service_status

RETENTION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
REPO = Path(__file__).resolve().parents[3]

# Answers with what an instance must not share with its siblings or lose to the template:
# its environment and working folder, module state, random draws and native thread pools.
STATEFUL = '''
import json, os, random, threading
import numpy
import threadpoolctl
from flask import Flask
app = Flask(__name__)
SEEN = []  # module state of this function: every instance starts with none

def native_threads():  # those Python did not start (gunicorn's request threads vary)
    return len(os.listdir("/proc/self/task")) - threading.active_count()

@app.route("/")
def index():
    idle_threads = native_threads()  # before any call of this process needs the BLAS pool
    numpy.ones((300, 300)) @ numpy.ones((300, 300))
    SEEN.append(1)
    inherited = getattr(json, "left_by", None)  # a mark on a module the template preloaded
    json.left_by = os.getpid()
    blas = sorted(p["num_threads"] for p in threadpoolctl.threadpool_info()
                  if p["user_api"] == "blas")
    return {"revision": os.environ["K_REVISION"], "greeting": os.environ.get("GREETING"),
            "env": sorted(os.environ), "cwd": os.getcwd(), "requests": len(SEEN),
            "inherited": inherited, "random": random.random(),
            "numpy": float(numpy.random.random()), "blas_threads": blas,
            "threads": [idle_threads, native_threads()],
            "pid": os.getpid(), "parent": os.getppid()}
'''

# Imports a module found only on a path its own revision names: the template cannot
# preload it, the instance imports it after the fork.
OWN_PATH = '''
import os, sys
sys.path.insert(0, os.environ["EXTRA_PATH"])
import extra_answer
from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return {"answer": extra_answer.ANSWER, "parent": os.getppid()}
'''


def _stateful_service() -> dict[str, Any]:
    return service("stateful", image="stateful", annotations={RETENTION: "1s"},
                   env=[{"name": "GREETING", "value": "hello"}])


def _parent(pid: int) -> int:
    return psutil.Process(pid).ppid()


def _template_pid(runtime: Runtime) -> int:
    assert runtime.template is not None
    pid = runtime.template.describe()["pid"]
    assert isinstance(pid, int)
    return pid


def _cold_answer(runtime: Runtime, name: str) -> dict[str, Any]:
    """One answer from a new instance: the service is at zero before and after."""
    wait_until(lambda: service_status(runtime, name)["instances"] == 0, 20, "scale to zero")
    answer = requests.get(service_status(runtime, name)["url"], timeout=60)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    found["cwd"] = str(Path(found["cwd"]).relative_to(runtime.options.project.resolve()))
    return found


def test_a_prewarmed_instance_answers_as_a_fresh_one_and_keeps_nothing_of_its_siblings(
        start_runtime: StartRuntime) -> None:
    prewarmed = start_runtime([_stateful_service()], functions={"stateful": STATEFUL})
    fresh = start_runtime([_stateful_service()], functions={"stateful": STATEFUL},
                          prewarm=False)

    first, second = (_cold_answer(prewarmed, "stateful") for _ in range(2))
    baseline = _cold_answer(fresh, "stateful")

    template = _template_pid(prewarmed)
    assert first["parent"] == second["parent"] == template  # serving in the forked process
    assert _parent(baseline["parent"]) == os.getpid()  # the runtime started its master
    # "threads": the forked process starts its BLAS threads when a call first needs them,
    # and as many, as a gunicorn worker forked from a master that imported numpy does.
    same = ("revision", "greeting", "env", "cwd", "requests", "inherited", "blas_threads",
            "threads")
    for answer in (first, second):
        assert {k: answer[k] for k in same} == {k: baseline[k] for k in same}
    assert first["requests"] == 1 and first["inherited"] is None
    assert len({first["pid"], second["pid"], template}) == 3
    assert first["numpy"] != second["numpy"]  # reseeded: the template's draws are not shared
    assert first["random"] != second["random"]


def test_scale_down_kills_the_forked_instance_which_serves_in_one_process(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", annotations={RETENTION: "1s"})])

    instance = requests.get(service_status(runtime, "echo")["url"], timeout=60).json()["pid"]

    # gunicorn's worker runs in the forked process itself: no master forks a second one.
    assert _parent(instance) == _template_pid(runtime)
    assert psutil.Process(instance).children() == []
    wait_until(lambda: service_status(runtime, "echo")["instances"] == 0, 20, "scale to zero")
    wait_until(lambda: not psutil.pid_exists(instance), 15, "the forked instance to exit")


# Registers an exit handler as it is imported (in gunicorn's master, with --preload); a
# worker forked from the master inherits it. Each process that runs it writes its PID.
AT_EXIT = '''
import atexit, os
from flask import Flask
app = Flask(__name__)
atexit.register(lambda: open(os.environ["EXIT_FILE"], "a").write(f"{os.getpid()}\\n"))

@app.route("/")
def index():
    return {"pid": os.getpid(), "parent": os.getppid()}
'''


@pytest.mark.parametrize("prewarm", [True, False], ids=["prewarmed", "fresh"])
def test_a_scaled_down_instance_runs_its_exit_handlers_as_a_fresh_process_does(
        start_runtime: StartRuntime, tmp_path: Path, prewarm: bool) -> None:
    """What a function leaves to an exit handler (OpenTelemetry's last span export) is done
    in a forked instance too, although it skips the interpreter's teardown."""
    exit_file = tmp_path / "exits"
    runtime = start_runtime([service("at-exit", image="at-exit", annotations={RETENTION: "1s"},
                                     env=[{"name": "EXIT_FILE", "value": str(exit_file)}])],
                            functions={"at-exit": AT_EXIT}, prewarm=prewarm)
    answer = requests.get(service_status(runtime, "at-exit")["url"], timeout=60).json()

    wait_until(lambda: service_status(runtime, "at-exit")["instances"] == 0, 20,
               "scale to zero")
    # Forked, the instance is one process; fresh, gunicorn's worker and then its master.
    processes = [answer["pid"]] if prewarm else [answer["pid"], answer["parent"]]
    wait_until(lambda: not any(psutil.pid_exists(pid) for pid in processes), 15,
               "the instance to exit")
    ran = sorted(int(line) for line in exit_file.read_text().split()) \
        if exit_file.exists() else []
    assert ran == sorted(processes)


@pytest.mark.parametrize("prewarm", [True, False], ids=["prewarmed", "fresh"])
def test_a_main_that_fails_to_import_is_reported_in_status_and_its_log(
        start_runtime: StartRuntime, prewarm: bool) -> None:
    """Probed as it is created (initial-scale 1), as Knative probes a new revision."""
    runtime = start_runtime([service("broken", image="broken", initial_scale=None)],
                            prewarm=prewarm, functions={
                                "broken": "import a_module_nobody_installed\napp = None\n"})

    (revision,) = wait_until(
        lambda: [r for r in service_status(runtime, "broken")["revisions"]
                 if r["reason"] != "Deploying"], 60, "the revision to fail its start")
    answer = requests.get(service_status(runtime, "broken")["url"], timeout=60)

    assert answer.status_code == 503
    assert "a_module_nobody_installed" in answer.text, answer.text
    assert (revision["ready"], revision["reason"]) == (False, "ExitCode1")
    assert "ModuleNotFoundError" in revision["message"]  # the last lines of its log
    ready = next(c for c in runtime.objects.get(REVISION, runtime.options.namespace,
                                                "broken-00001")["status"]["conditions"]
                 if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ExitCode1")
    assert "No module named 'a_module_nobody_installed'" in ready["message"]
    log = (runtime.options.workdir / "logs" / "broken-00001-1.log").read_text()
    assert "No module named 'a_module_nobody_installed'" in log
    assert "not prewarmed" not in log  # with a template, the failing instance was forked


def test_a_function_importing_what_the_template_could_not_still_starts(
        start_runtime: StartRuntime, tmp_path: Path) -> None:
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "extra_answer.py").write_text("ANSWER = 42\n")
    own_path = service("own-path", image="own-path",
                       env=[{"name": "EXTRA_PATH", "value": str(tmp_path / "extra")}])
    runtime = start_runtime([own_path], functions={"own-path": OWN_PATH})

    answer = requests.get(service_status(runtime, "own-path")["url"], timeout=60)

    assert answer.status_code == 200, answer.text
    assert answer.json()["answer"] == 42
    assert answer.json()["parent"] == _template_pid(runtime)
    template = runtime.status()["template"]
    assert "extra_answer" in template["failed_imports"]


def test_a_revision_setting_what_a_preloaded_module_read_as_it_loaded_starts_fresh(
        start_runtime: StartRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the kubernetes client takes KUBECONFIG when it loads: forked from the template,
    the instance would keep the template's value, so it starts as a fresh process and sees
    its own; a revision leaving the variable alone is forked."""
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "reads_flavour.py").write_text(
        "import os\nFLAVOUR = os.environ.get('FLAVOUR', 'plain')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "modules"), os.environ.get("PYTHONPATH", "")]))
    flavoured = ("import os, reads_flavour\nfrom flask import Flask\napp = Flask(__name__)\n"
                 "app.get('/')(lambda: {'flavour': reads_flavour.FLAVOUR, "
                 "'parent': os.getppid()})\n")
    runtime = start_runtime([
        service("mint", image="flavoured", env=[{"name": "FLAVOUR", "value": "mint"}]),
        service("plain", image="flavoured")], functions={"flavoured": flavoured})

    mint = requests.get(service_status(runtime, "mint")["url"], timeout=60).json()
    plain = requests.get(service_status(runtime, "plain")["url"], timeout=60).json()

    assert mint["flavour"] == "mint" and _parent(mint["parent"]) == os.getpid()  # fresh
    assert plain["flavour"] == "plain" and plain["parent"] == _template_pid(runtime)
    log = (runtime.options.workdir / "logs" / "mint-00001-1.log").read_text()
    assert "not prewarmed" in log and "FLAVOUR" in log


def test_a_template_that_a_module_leaves_a_thread_in_forks_nothing(
        start_runtime: StartRuntime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forking with a second thread could copy a held lock: the template says which module
    started it, and instances start as fresh processes instead."""
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "starts_a_thread.py").write_text(
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path / "modules"), os.environ.get("PYTHONPATH", "")]))
    threaded = ("import os, starts_a_thread\nfrom flask import Flask\napp = Flask(__name__)\n"
                "app.get('/')(lambda: {'parent': os.getppid()})\n")
    runtime = start_runtime([service("threaded", image="threaded")],
                            functions={"threaded": threaded})

    template = runtime.status()["template"]
    answer = requests.get(service_status(runtime, "threaded")["url"], timeout=60)

    assert template["state"] == "failed"
    assert "starts_a_thread" in template["problem"] and "threads" in template["problem"]
    assert answer.status_code == 200, answer.text
    assert _parent(answer.json()["parent"]) == os.getpid()  # a fresh gunicorn's worker


@pytest.mark.timeout(400)
def test_the_template_of_this_project_holds_no_thread_and_no_socket(tmp_path: Path) -> None:
    """With everything the real functions import preloaded: numpy, pandas, pyarrow,
    scikit-learn, skops, the kubernetes client."""
    template = InstanceTemplate(modules_to_preload(REPO), tmp_path / "template.log",
                                dict(os.environ))
    template.start()
    try:
        assert template.wait_ready(300), template.describe()["problem"]
        process = psutil.Process(template.describe()["pid"])
        described = template.describe()

        assert process.num_threads() == 1
        assert process.net_connections(kind="all") == []
        assert described["preloaded"] > 50 and described["rss_mib"] > 100
        assert described["failed_imports"] == {}
    finally:
        template.stop()


def test_a_template_stopped_while_it_preloads_ends_its_reader_cleanly(tmp_path: Path) -> None:
    """`troupe up` refusing a project stops the template at once, while it still preloads
    and its reader thread is blocked on its output: the reader must end on its own, without
    an exception (closing the pipe under it from another thread raised one)."""
    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(30)\n")
    template = InstanceTemplate([("slow_to_import", [])], tmp_path / "template.log",
                                {**os.environ, "PYTHONPATH": str(tmp_path)})
    before = set(threading.enumerate())
    template.start()
    (reader,) = set(threading.enumerate()) - before
    pid = template.describe()["pid"]
    assert reader.name == "template-reader" and reader.is_alive()

    template.stop()

    assert not reader.is_alive()  # and an exception in it would fail this test
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert template.describe()["state"] == "failed"  # it never reported: it cannot fork
