"""The floors that scale-from-zero is measured against, for one function and one request:

- fresh: a bare Python process that imports the function's `main` and answers the request
  (werkzeug's server, no gunicorn, no runtime): the floor without a template;
- fork: fork() of a process that has loaded the modules the template loads and those a
  fresh `import main` loads, without running the function's start-up; its child imports
  `main` (building the app, loading a model: start-up work no template can do ahead, as it
  belongs to the revision) and answers the request: the floor with one.

Both run with the environment the runtime gives the function (floor_env), so they do the
same work per request as the function they are compared to: with `troupe up`, that
includes recording the request's span and exporting it to the runtime's receiver.

Both answer on a listening socket the benchmark made and handed over, so a request can be
sent as the process starts, without probing, and no other process can take the port.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import requests

# Answers one request with the app of `main`, on the listening socket sys.argv[1].
_FRESH = """
import sys
from werkzeug.serving import make_server
import main
make_server("127.0.0.1", 0, main.app, fd=int(sys.argv[1])).handle_request()
"""

# Loads the modules named in sys.argv[2] (as `from m import n`), then, for each line on
# stdin, forks a child that imports `main` and answers one request.
_PRELOADED = """
import importlib, json, os, sys
from pathlib import Path
for module, names in json.loads(Path(sys.argv[2]).read_text()):
    try:
        imported = importlib.import_module(module)
        for name in names:
            getattr(imported, name, None) or importlib.import_module(module + "." + name)
    except Exception:
        pass  # as the template: a module that cannot load is the child's to import
from werkzeug.serving import make_server
listener = int(sys.argv[1])
sys.stdout.write("ready\\n")
sys.stdout.flush()
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            import main
            make_server("127.0.0.1", 0, main.app, fd=listener).handle_request()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    sys.stdout.write("done\\n")
    sys.stdout.flush()
"""

# The modules a fresh `import main` loads, the function's start-up included (the
# predictor's model brings scikit-learn's, imported as it is read).
_IMPORTED_BY_MAIN = """
import json, sys
from pathlib import Path
import main
own = {p.stem for p in Path.cwd().glob("*.py")}
print(json.dumps(sorted(m for m in sys.modules if m.partition(".")[0] not in own)))
"""


def modules_of_main(folder: Path, env: Mapping[str, str]) -> list[str]:
    done = subprocess.run([sys.executable, "-c", _IMPORTED_BY_MAIN], cwd=folder,
                          env=dict(env), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"importing {folder.name}'s main failed: {done.stderr[-800:]}")
    modules: list[str] = json.loads(done.stdout)
    return modules


Send = Callable[[str], requests.Response]  # one request to a base URL, answered


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def _answered(send: Send, listener: socket.socket) -> requests.Response:
    answer = send(f"http://127.0.0.1:{listener.getsockname()[1]}")
    if answer.status_code >= 300:
        raise RuntimeError(f"the floor answered {answer.status_code}: {answer.text[:300]}")
    return answer


def fresh_process_answer(folder: Path, env: Mapping[str, str], send: Send) -> float:
    """Seconds from launching a bare Python process until it answered `send`."""
    listener = _listener()
    try:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _FRESH, str(listener.fileno())],
                                   cwd=folder, env=dict(env), pass_fds=[listener.fileno()],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _answered(send, listener)
            elapsed = time.perf_counter() - started
        finally:
            _, error = process.communicate(timeout=60)
        if process.returncode != 0:
            raise RuntimeError(f"the fresh floor failed: {error.decode()[-800:]}")
        return elapsed
    finally:
        listener.close()


class PreloadedProcess:
    """A process with everything a function imports loaded, forking one child per request."""

    def __init__(self, folder: Path, env: Mapping[str, str], preload: Path) -> None:
        """`preload`: a JSON file of the [module, [names]] pairs to load before forking."""
        self._listener = _listener()
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self._process = subprocess.Popen(
            [sys.executable, "-c", _PRELOADED, str(self._listener.fileno()), str(preload)],
            cwd=folder, env=dict(env), pass_fds=[self._listener.fileno()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, text=True)
        _, stdout = self._pipes()
        if stdout.readline() != "ready\n":  # preloading is not part of any figure
            self._errors.seek(0)
            raise RuntimeError(f"the preloaded floor process of {folder.name} did not start: "
                               f"{self._errors.read().decode()[-800:]}")

    @property
    def pid(self) -> int:
        return self._process.pid

    def fork_answer(self, send: Send) -> float:
        """Seconds from asking for a fork until the child answered `send`."""
        stdin, stdout = self._pipes()
        started = time.perf_counter()
        stdin.write("fork\n")
        stdin.flush()
        _answered(send, self._listener)
        elapsed = time.perf_counter() - started
        if stdout.readline() != "done\n":
            raise RuntimeError("the preloaded floor process exited")
        return elapsed

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self._process.stdin is not None and self._process.stdout is not None
        return self._process.stdin, self._process.stdout

    def close(self) -> None:
        stdin, _ = self._pipes()
        stdin.close()
        try:
            self._process.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._listener.close()
        self._errors.close()


def floor_env(runtime_env: Mapping[str, str], service: str,
              env: Mapping[str, str]) -> dict[str, str]:
    """The environment the runtime gives an instance of `service`, less its port: its
    revision's `env` under the runtime's own variables (`runtime_env`: the store, the
    kubeconfig, and the OTLP endpoint that makes the function record and export spans),
    so that the floor does the same work per request as the function it is compared to."""
    return {**os.environ, **env, **runtime_env, "K_SERVICE": service,
            "K_REVISION": f"{service}-floor", "K_CONFIGURATION": service,
            "PYTHONUNBUFFERED": "1"}
