"""Starting and stopping the processes the runtime runs (Tansu, Prometheus, gunicorn), one
way: output appended to a log file, and a stop that escalates to SIGKILL.

Function instances are either children started here (`SpawnedProcess`) or processes the
prewarmed template forked (`ForkedProcess`); both are a `RunningProcess` to the pool.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def files_left(unlimited: int) -> int:
    """Files this process may still open under its RLIMIT_NOFILE (`unlimited` when it has no
    limit): the budget the listeners share out as connection caps, so that a flood of
    clients meets a cap and an answer, not EMFILE in the middle of the runtime."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return unlimited
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux: guess
        in_use = 64
    return max(0, soft - in_use)


def stop_process(
    process: subprocess.Popen[Any] | None, timeout: float, how: int = signal.SIGTERM
) -> None:
    """Ask `process` to stop with `how`, and kill it if it is still there after `timeout`
    seconds: a stuck child must never keep `troupe down` or a test waiting."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ChildProcess:
    """A long-lived child (Tansu, Prometheus) whose output goes to `log_path`; it is
    always stopped, also when used as a context manager. Subclasses say how to start."""

    stop_timeout: float = 5.0

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def exit_code(self) -> int | None:
        """None while it runs (or was never started); its exit code once it has died."""
        return self._process.poll() if self._process is not None else None

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(self, command: Sequence[str], **options: Any) -> None:
        """Start `command` with its output appended to the log; OSError if it cannot run."""
        self._log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(list(command), stdin=subprocess.DEVNULL,
                                             stdout=self._log, stderr=subprocess.STDOUT,
                                             **options)
        except OSError:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL now: for a stop that ran out of time."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout=self.stop_timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


class RunningProcess(Protocol):
    """A process the runtime watches and stops, whoever started it."""

    @property
    def pid(self) -> int: ...

    def running(self) -> bool: ...

    def poll(self) -> int | None:
        """None while it runs; its exit code once it has ended, as Popen.poll gives it."""

    def stop(self, timeout: float, how: int = signal.SIGTERM) -> None: ...

    def kill(self) -> None:
        """SIGKILL now, without waiting: for a stop that ran out of time."""


@dataclass(frozen=True)
class SpawnedProcess:
    """A child this process started with subprocess."""

    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def poll(self) -> int | None:
        return self.popen.poll()

    def stop(self, timeout: float, how: int = signal.SIGTERM) -> None:
        stop_process(self.popen, timeout, how)
        kill_session(self.popen.pid)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        kill_session(self.popen.pid)


class ForkedProcess:
    """A process another one forked on our behalf (an instance the template forked).

    It is not our child, so waitpid cannot watch it and its exit status goes to its parent.
    A pidfd (Linux 5.3) stands in: it becomes readable when the process exits, and a
    signal sent through it can never reach another process that reused the PID.
    """

    def __init__(self, pid: int,
                 exit_code: Callable[[float], int | None] = lambda timeout: None) -> None:
        """`exit_code(timeout)`: how it ended, as its parent tells, waiting up to `timeout`
        seconds for the news; None if the parent cannot tell."""
        self._pid = pid
        self._exit_code = exit_code
        self._code: int | None = None
        self._asked = False  # whether the parent was asked for the exit code
        self._lock = threading.Lock()  # guards the pidfd against its closing in stop()
        self._stopping = threading.Lock()  # one stop at a time: only stop() closes the pidfd
        self._pidfd: int | None
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # exited before we looked
            self._pidfd = None

    @property
    def pid(self) -> int:
        return self._pid

    def running(self) -> bool:
        with self._lock:
            return self._pidfd is not None and not _readable(self._pidfd, 0)

    def poll(self) -> int | None:
        """None while it runs; once it has ended, its exit code as its parent reported it
        (which comes a moment after the pidfd says it ended, hence the wait), or None
        if the parent could not tell."""
        if not self._asked and not self.running():
            self._code, self._asked = self._exit_code(2.0), True
        return self._code

    def kill(self) -> None:
        with self._lock:
            if self._pidfd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        kill_session(self._pid)

    def stop(self, timeout: float, how: int = signal.SIGTERM) -> None:
        """Ask with `how`, SIGKILL after `timeout` seconds, then let the pidfd go."""
        with self._stopping:
            pidfd = self._pidfd
            if pidfd is None:
                return
            for signum in (how, signal.SIGKILL):
                if _readable(pidfd, 0):
                    break
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    signal.pidfd_send_signal(pidfd, signum)
                if _readable(pidfd, timeout):
                    break
            kill_session(self._pid)
            with self._lock:
                self._pidfd = None
            os.close(pidfd)


def kill_session(leader: int) -> None:
    """SIGKILL what is left of the process group `leader` leads (an instance runs in a
    session of its own). A SIGKILL to a fresh gunicorn's arbiter leaves its worker behind,
    orphaned, and a worker that hung (the reason the arbiter was killed) would never exit.
    (A forked instance is one process, but what it started, if anything, is in its group.)"""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(leader, signal.SIGKILL)


def _readable(fd: int, timeout: float) -> bool:
    readable, _, _ = select.select([fd], [], [], timeout)
    return bool(readable)
