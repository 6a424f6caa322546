"""Starting and stopping the processes the runtime runs (Tansu, Prometheus, gunicorn), one
way: output appended to a log file, and a stop that escalates to SIGKILL."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self


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
