"""Prewarmed instances, the runtime's side: which modules the template preloads, and the
handle through which `troupe up` starts it, asks it for instances and stops it.

The template process itself, and why it is built as it is, is template.py.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from importlib.util import resolve_name
from pathlib import Path
from typing import IO, Any, Final

import psutil

import troupe
from troupe.local.errors import LocalError
from troupe.local.host.processes import ForkedProcess, stop_process
from troupe.local.serving.template import InstanceRequest, json_line

# troupe's runtime side: a function never imports it, so neither does the template.
_RUNTIME_PACKAGES: Final = ("troupe.local", "troupe.cli", "troupe.demo", "troupe.client")
# Read by gunicorn's settings as they load, for defaults the instance's arguments override.
_OVERRIDDEN_BY_ARGUMENTS: Final = frozenset({"PORT", "WEB_CONCURRENCY"})
# How long a fork may take to be answered before the template counts as stuck.
_FORK_ANSWER_TIMEOUT: Final = 10.0
# Exit codes kept for instances nobody asked about yet (one scaled down is never asked).
_EXITS_KEPT: Final = 1000

Preload = list[tuple[str, list[str]]]  # (module, names taken from it), as `from m import n`


class TemplateUnavailable(LocalError, RuntimeError):
    """The template cannot fork this instance; it is started as a fresh process instead."""


def supported() -> str | None:
    """Why prewarming cannot run on this machine, or None when it can."""
    if not hasattr(os, "pidfd_open") or not Path("/proc/self/task").is_dir():
        return "prewarmed instances need Linux 5.3 or later (pidfd, /proc)"
    return None


# -- what to preload -----------------------------------------------------------------------
def modules_to_preload(project: Path) -> Preload:
    """Every import in the project's function folders, at module level or deferred into a
    function, less each folder's own modules; and, followed transitively, the imports of
    the troupe modules they reach, so that what troupe defers (pandas, scikit-learn) is
    preloaded too."""
    wanted: dict[str, set[str]] = {}
    for folder in sorted(p.parent for p in (project / "functions").glob("*/main.py")):
        own = {p.stem for p in folder.glob("*.py")} | {
            p.parent.name for p in folder.glob("*/__init__.py")}
        for path in sorted(folder.glob("*.py")):
            for module, names in _imports(path, None):
                if module.partition(".")[0] not in own:
                    wanted.setdefault(module, set()).update(names)
    _follow_troupe_modules(wanted)
    return sorted((module, sorted(names)) for module, names in wanted.items()
                  if module != "__future__" and not _runtime_side(module))


def _runtime_side(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in _RUNTIME_PACKAGES)


def _imports(path: Path, package: str | None) -> Iterator[tuple[str, list[str]]]:
    """(module, names) of every import statement in the file, wherever it is. A file that
    does not parse has none here: its instance reports the error when it imports it."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names if alias.name != "*"]
            if not node.level:
                yield str(node.module), names
            elif package is not None:  # in a function folder, a relative import is its own
                yield resolve_name("." * node.level + (node.module or ""), package), names


def _follow_troupe_modules(wanted: dict[str, set[str]]) -> None:
    root = Path(troupe.__file__).parent
    seen: set[str] = set()
    pending = [m for m in wanted if m == "troupe" or m.startswith("troupe.")]
    while pending:
        module = pending.pop()
        # `from troupe.ml import catalog` names a module; `from troupe.ml import train` not.
        candidates = [module, *(f"{module}.{name}" for name in wanted.get(module, ()))]
        for name in candidates:
            source = _troupe_source(root, name)
            if name in seen or source is None or _runtime_side(name):
                continue
            seen.add(name)
            package = name if source.name == "__init__.py" else name.rpartition(".")[0]
            for found, names in _imports(source, package):
                wanted.setdefault(found, set()).update(names)
                if found.startswith("troupe.") and found not in seen:
                    pending.append(found)


def _troupe_source(root: Path, module: str) -> Path | None:
    """The source file of a troupe module, found without importing it."""
    parts = module.split(".")[1:]
    package = root.joinpath(*parts, "__init__.py")
    if package.is_file():
        return package
    plain = root.joinpath(*parts[:-1], f"{parts[-1]}.py") if parts else None
    return plain if plain is not None and plain.is_file() else None


# -- the template process ---------------------------------------------------------------------
class InstanceTemplate:
    """The template process of one runtime: started with `troupe up`, stopped with it."""

    def __init__(self, preload: Preload, log_path: Path, env: Mapping[str, str]) -> None:
        """`env`: what every instance's environment has in common, the template's own."""
        self._preload = preload
        self._log_path = log_path
        self._env = {**env, "PYTHONUNBUFFERED": "1"}
        self._process: subprocess.Popen[bytes] | None = None
        self._report: dict[str, Any] | None = None  # the template's, once it has preloaded
        self._problem: str | None = None  # why it cannot fork, when it cannot
        self._ready = threading.Condition()
        self._fork_lock = threading.Lock()
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()  # None: it ended
        self._exits: OrderedDict[int, int] = OrderedDict()  # pid -> exit code, reported
        self._exited = threading.Condition()
        self._ended = False  # the template's output has closed
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Start the template; it preloads in the background (wait_ready waits for it)."""
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "troupe.local.serving.template"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                env=self._env, start_new_session=True)
        assert self._process.stdin is not None
        self._process.stdin.write(json_line(self._preload))
        self._process.stdin.flush()
        self._reader = threading.Thread(target=self._read_template, args=(self._process,),
                                        name="template-reader", daemon=True)
        self._reader.start()

    def _read_template(self, process: subprocess.Popen[bytes]) -> None:
        """Everything the template says: its report, then the answers to forks (for
        fork()) and the exits of instances (for exit_code()), until it ends. The pipe is
        closed here, by its only reader, once the template has closed its end: closed from
        another thread, it could be freed under a read in progress."""
        assert process.stdout is not None
        with process.stdout:
            self._read_until_closed(process.stdout)

    def _read_until_closed(self, stdout: IO[bytes]) -> None:
        line = stdout.readline()
        with self._ready:
            if not line:
                self._problem = (f"the template exited while preloading; see "
                                 f"{self._log_path}")
            else:
                self._report = json.loads(line)
                self._problem = self._report.get("problem")
            self._ready.notify_all()
        for line in iter(stdout.readline, b""):
            message = json.loads(line)
            if "exited" not in message:
                self._answers.put(message)
                continue
            with self._exited:
                self._exits[int(message["exited"])] = int(message["code"])
                while len(self._exits) > _EXITS_KEPT:
                    self._exits.popitem(last=False)
                self._exited.notify_all()
        self._answers.put(None)
        with self._exited:
            self._ended = True  # no exit is told any more: stop waiting for one
            self._exited.notify_all()

    def wait_ready(self, timeout: float) -> bool:
        with self._ready:
            self._ready.wait_for(lambda: self._report is not None or self._problem is not None,
                                 timeout)
            return self._report is not None and self._problem is None

    def why_not_fork(self, env: Mapping[str, str]) -> str | None:
        """Why an instance with `env` cannot be forked, or None. A forked instance keeps
        what the interpreter read as it started (PYTHON*) and what a preloaded module read
        as it loaded: it must agree with the template on those variables."""
        report = self._report or {}
        set_by_imports: dict[str, str] = report.get("set_by_imports", {})
        template = {**self._env, **set_by_imports}
        instance = {**set_by_imports, **env}
        read = set(report.get("read_env", ())) - _OVERRIDDEN_BY_ARGUMENTS
        read |= {name for name in {*template, *instance} if name.startswith("PYTHON")}
        differing = sorted(name for name in read if instance.get(name) != template.get(name))
        if differing:
            return (f"its environment sets {', '.join(differing)}, read as the template "
                    "started or loaded its modules")
        return None

    def fork(self, request: InstanceRequest, timeout: float) -> ForkedProcess:
        """A new instance, forked from the template; TemplateUnavailable when it cannot."""
        if not self.wait_ready(timeout):
            raise TemplateUnavailable(self._problem or f"the template was not ready after "
                                      f"{timeout:g}s")
        reason = self.why_not_fork(request.env)
        if reason:
            raise TemplateUnavailable(reason)
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        with self._fork_lock:
            try:
                process.stdin.write(request.to_line())
                process.stdin.flush()
                answer = self._answers.get(timeout=_FORK_ANSWER_TIMEOUT)
            except OSError as error:  # a broken pipe: the template is gone
                answer, problem = None, str(error)
            except queue.Empty:
                answer, problem = None, f"no answer within {_FORK_ANSWER_TIMEOUT:g} s"
            else:
                problem = "it ended"
            if answer is None:
                self._fail(f"the template stopped answering ({problem}, exit code "
                           f"{process.poll()}); see {self._log_path}")
                raise TemplateUnavailable(self._problem or "")
        if "pid" not in answer:
            raise TemplateUnavailable(str(answer.get("error")))
        pid = int(answer["pid"])
        return ForkedProcess(pid, lambda timeout: self.exit_code(pid, timeout))

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """How instance `pid` ended, as the template reported it (Popen.poll's meaning:
        -N for signal N), waiting up to `timeout` seconds for the report; None if the
        template did not tell (it ended too)."""
        with self._exited:
            self._exited.wait_for(lambda: pid in self._exits or self._ended, timeout)
            return self._exits.get(pid)

    def _fail(self, problem: str) -> None:
        with self._ready:
            self._problem = problem
            self._ready.notify_all()

    def describe(self) -> dict[str, Any]:
        """The `troupe status` view: state, PID, resident memory, what it preloaded."""
        process, report = self._process, self._report or {}
        state = "failed" if self._problem else "ready" if self._report else "starting"
        rss = None
        if process is not None and process.poll() is None:
            with contextlib.suppress(psutil.Error):
                rss = psutil.Process(process.pid).memory_info().rss / 2**20
        return {"state": state, "pid": process.pid if process else None, "rss_mib": rss,
                "preloaded": len(report.get("preloaded", [])),
                "failed_imports": report.get("failed", {}), "problem": self._problem}

    def kill(self) -> None:
        """SIGKILL now: for a stop that ran out of time."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def stop(self) -> None:
        """Closing its stdin ends the template; its instances are the pools' to stop."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        stop_process(process, timeout=5.0)
        reader = self._reader
        if reader is not None:  # it ends at the end of the template's output
            reader.join(timeout=5.0)
