"""The template behind prewarmed instances: a process that has imported the heavy libraries
the project's functions use, and forks a function instance whenever the runtime asks.

Why. A fresh function process spends one to four seconds importing numpy, pandas,
scikit-learn, Flask and the kubernetes client before it can answer. fork() of a process
that has imported them already takes milliseconds, and the child shares the template's
memory pages until it writes to them (Android's zygote, Lambda SnapStart).

How an instance starts. The runtime writes one JSON line per instance on the template's
stdin (InstanceRequest) and reads the child's PID back. The child (forked_instance.py):
- starts a session of its own, so that Ctrl-C in the terminal reaches the runtime only;
- points stdin at /dev/null and stdout and stderr at its own log file, which also drops the
  template's pipes to the runtime;
- takes its revision's environment in place of the template's, plus what the preloaded
  modules set in it as they loaded (a fresh process importing them would have that too);
- reseeds its random state: Python's `random` (CPython does it at fork as well) and numpy's
  global RandomState, which nothing reseeds, so every instance would otherwise draw the
  same numbers as its siblings;
- gives the native thread pools (OpenBLAS, OpenMP) the sizes a fresh process would get;
- forgets any module named like a file of its function folder, so `handler` is its own;
- then runs the `gunicorn` command's own application with the very arguments a fresh
  process is started with (instance.gunicorn_arguments), from settings and an argument
  parser the template made once (forked_gunicorn.py): gunicorn imports `main:app`
  (--preload: what the template lacks is imported now, so a function whose imports differ
  starts correctly, only slower), binds the port and serves, its one worker running in the
  instance's own process instead of forked from it (forked_gunicorn.py says why).
So each instance has its own PID, environment and log, and the runtime stops it on
scale-down through a pidfd (host.processes.ForkedProcess). The instance is the template's
child, so the template reaps it and reports how it ended: a main that fails to import shows
as ExitCode1 on its revision, as a fresh process's would. Memory stays shared as long as
nobody writes to it: the template freezes its heap before each fork (gc.freeze, Python's
own recipe), so that an instance's collections never walk it, builds once what every
instance would build first (the event validators), and an instance leaves with os._exit,
without a teardown that would release, and so copy, every inherited object.

Why the template holds no threads, sockets or Kafka clients when it forks:
- threads: fork() copies only the thread that calls it. A lock that another thread held at
  that moment (malloc's, the import lock, logging's, a library's own) stays locked forever
  in the child, which hangs the first time it needs it. So the native pools are set to one
  thread and Arrow's allocator to no background thread before anything is imported, and the
  count of threads is checked after each preloaded module;
- sockets: a socket open in the template would be shared by every instance. Two processes
  writing to one connection interleave their bytes, and a listening socket accepts for
  whichever process is quickest. The template talks to the runtime over pipes, which each
  child replaces or closes before it runs anything, and it checks it has no socket after
  each module;
- Kafka clients are both a socket and a thread (the heartbeat). The template is a fresh
  interpreter started by exec, not a fork of the runtime, so none of the runtime's clients,
  threads or sockets exist in it, and it refuses to have `kafka` imported.
A preloaded module that breaks one of these is named in the template's report, and the
template then forks nothing: the runtime starts fresh processes and `troupe status` says why.

Why not an existing mechanism. gunicorn's --preload forks workers of one application that
share one listening socket, where instances here are different functions, revisions and
environments, each on its own port. multiprocessing's forkserver does the same job as this
module, but there is one per interpreter, with its preload list fixed at first use and no
public way to stop it or read its PID (`troupe down` and `troupe status` need both); it
holds its listening Unix socket when it forks; every child re-imports the parent's
`__main__` (the `troupe` script); and it brings a resource-tracker process along. What is
kept from it: preloading by module name, a fork per request over a pipe, and the child
dropping the channel before it runs anything.

What stays the template's in every instance: the variables the interpreter reads as it
starts (PYTHONPATH, PYTHONHASHSEED...), and those a preloaded module reads as it loads
(the kubernetes client takes KUBECONFIG then, scikit-learn its SKLEARN_* settings). So the
template runs with the environment every instance shares (the runtime's own variables
included), notes each variable read while it preloads, and the runtime starts as a fresh
process any instance whose environment differs on one of these (InstanceTemplate.
why_not_fork). Not seen: a module scanning the environment for a prefix as it loads (fsspec,
FSSPEC_*) notes only the variables the template had, and native code reads the C
environment directly; of that, the thread pools' sizes are what matters, and is restored.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import sys
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from troupe.local.serving.forked_instance import Prepared, become_instance, native_thread_pools

# Set before anything is imported: the native libraries size their pools when they load.
_ONE_THREAD: Final = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                      "MKL_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
# What every instance runs, whatever its function: gunicorn loads its logger class and
# its worker class by name, out of sight of the imports read in the function folders.
ALWAYS_PRELOADED: Final = ("gunicorn.app.wsgiapp", "gunicorn.arbiter", "gunicorn.glogging",
                           "gunicorn.workers.gthread")
# Kafka clients live in the runtime; one copied into every instance would share its socket.
_REFUSED: Final = ("kafka",)


@dataclass(frozen=True)
class InstanceRequest:
    """One instance to fork: gunicorn's arguments, the environment, the log file."""

    folder: str  # the function folder, whose module names the child must not inherit
    gunicorn_arguments: tuple[str, ...]
    env: Mapping[str, str]
    log: str

    def to_line(self) -> bytes:
        return json_line(asdict(self))

    @classmethod
    def from_line(cls, line: bytes) -> InstanceRequest:
        doc = json.loads(line)
        return cls(str(doc["folder"]), tuple(doc["gunicorn_arguments"]), dict(doc["env"]),
                   str(doc["log"]))


def main() -> None:
    """`python -m troupe.local.serving.template`: preload, report, then fork on request.

    The first line on stdin names the modules to preload ([module, [names]] pairs, as in
    `from module import names`); the template answers with its report, then one line
    with the PID (or the error) per InstanceRequest, until stdin closes. Between those it
    reports each instance's exit ({"exited": pid, "code": ...}, as Popen.poll gives it):
    the instances are its children, so only it can learn how they ended."""
    os.environ.update(_ONE_THREAD)
    gc.disable()  # no collection leaves holes in the pages every instance shares
    requests, replies = _LineReader(sys.stdin.fileno()), sys.stdout.buffer
    preload = json.loads(requests.first_line() or b"[]")
    before = dict(os.environ)
    environ = os.environ
    recorder = _ReadRecorder(environ)
    os.environ = recorder  # type: ignore[assignment]  # noqa: B003 - reads pass through
    try:
        report = _preload([*((name, []) for name in ALWAYS_PRELOADED), *preload])
    finally:
        os.environ = environ  # noqa: B003 - the process's own mapping again
    # What the preloaded modules put in the environment as they loaded (threadpoolctl sets
    # KMP_DUPLICATE_LIB_OK): a fresh process would have it too, beside its revision's.
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    report |= {"read_env": sorted(recorder.read), "set_by_imports": set_by_imports}
    from troupe.local.serving.forked_gunicorn import PrebuiltConfig  # gunicorn is loaded now

    prepared = Prepared(set_by_imports, native_thread_pools(), PrebuiltConfig())
    _warm_up()
    report["problem"] = report["problem"] or _unclean()
    _reply(replies, report)
    if report["problem"]:
        return
    # A child's exit wakes the loop below through this pipe (the signal module's wakeup
    # fd): a pipe, not a thread, since the template must fork with one thread only.
    exits, wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake)
    signal.signal(signal.SIGCHLD, _note_signal)
    while True:
        readable, _, _ = select.select([requests.fd, exits], [], [])
        if exits in readable:
            _drain(exits)
            _report_exits(replies)
        if requests.fd not in readable:
            continue
        lines = requests.available_lines()
        if lines is None:
            return  # stdin closed: the runtime is done with the template
        for line in lines:
            _fork_instance(InstanceRequest.from_line(line), replies, prepared, (exits, wake))


def _fork_instance(request: InstanceRequest, replies: Any, prepared: Prepared,
                   wakeup_pipe: tuple[int, int]) -> None:
    # Python's own recipe for fork without exec: with every object of the template frozen,
    # an instance's first collections skip them, instead of walking the whole preloaded
    # heap and so copying each of its pages (that cost 0.5-1.5 s a start).
    gc.freeze()
    try:
        pid = os.fork()
    except OSError as error:
        _reply(replies, {"error": f"fork failed: {error}"})
        return
    if pid == 0:
        gc.enable()
        signal.set_wakeup_fd(-1)
        for fd in wakeup_pipe:
            os.close(fd)
        become_instance(request, prepared)
    _reply(replies, {"pid": pid})


def _note_signal(signum: int, frame: Any) -> None:
    """SIGCHLD's handler: the wakeup fd has already told the loop, nothing else to do.
    (Ignoring SIGCHLD instead would have the kernel reap instances, exit codes unseen.)"""


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError):
        while os.read(fd, 4096):
            pass


def _report_exits(replies: Any) -> None:
    """Reap every instance that has exited, and tell the runtime how each ended."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children left
            return
        if pid == 0:
            return
        _reply(replies, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})


class _LineReader:
    """Lines from a pipe, read with os.read so that select() on it tells the truth (a
    buffered reader may hold a line select cannot see)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""

    def first_line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def available_lines(self) -> list[bytes] | None:
        """The complete lines that have arrived; None once the pipe is closed."""
        chunk = os.read(self.fd, 65536)
        if not chunk:
            return None
        *lines, self._buffer = (self._buffer + chunk).split(b"\n")
        return lines


class _ReadRecorder(MutableMapping[str, str]):
    """os.environ while the template preloads, noting every variable read. A module that
    reads one as it loads keeps the template's value in every instance, so the runtime
    forks only instances whose environment agrees with the template's on these."""

    def __init__(self, environ: MutableMapping[str, str]) -> None:
        self.environ = environ
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.environ[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.read.add(name)
        return name in self.environ

    def __setitem__(self, name: str, value: str) -> None:
        self.environ[name] = value

    def __delitem__(self, name: str) -> None:
        del self.environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.environ)

    def __len__(self) -> int:
        return len(self.environ)

    def copy(self) -> dict[str, str]:
        return dict(self.environ)


def json_line(doc: Any) -> bytes:
    """One message of the template's protocol: a JSON document on one line."""
    return json.dumps(doc).encode() + b"\n"


def _reply(replies: Any, doc: Mapping[str, Any]) -> None:
    replies.write(json_line(doc))
    replies.flush()


def _preload(imports: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Import each module (and the names taken from it); a module that fails is skipped,
    one that leaves a thread or a socket behind stops the preloading."""
    loaded: list[str] = []
    failed: dict[str, str] = {}
    for module, names in imports:
        try:
            imported = importlib.import_module(module)
            for name in names:  # `from module import name`: an attribute, lazy or not, or a module
                if not hasattr(imported, name):
                    importlib.import_module(f"{module}.{name}")
        except Exception as error:  # a module may need its function's environment to load
            failed[module] = f"{type(error).__name__}: {error}"
            continue
        loaded.append(module)
        problem = _unclean()
        if problem:
            return {"problem": f"after importing {module}: {problem}", "preloaded": loaded,
                    "failed": failed}
    return {"problem": None, "preloaded": loaded, "failed": failed}


def _warm_up() -> None:
    """Do here, once, what every instance would do with its first event: build the JSON
    Schema validators of troupe's event types. They are caches in memory that a fork
    shares, built without a thread or a socket (the check that follows says so)."""
    events = sys.modules.get("troupe.events")
    if events is not None:
        events.compile_validators()


def _unclean() -> str | None:
    """What would make a fork unsafe now: another thread, an open socket, a Kafka client."""
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1:
        return f"{threads} threads are running, and a fork would copy only one of them"
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the directory's own descriptor, closed by now
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    if sockets:
        return f"{sockets} sockets are open, and every instance would share them"
    refused = [name for name in _REFUSED if name in sys.modules]
    if refused:
        return f"{', '.join(refused)} is imported; its clients belong to the runtime"
    return None


if __name__ == "__main__":
    main()
