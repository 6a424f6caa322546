"""Stopping the processes the runtime starts (Tansu, Prometheus, gunicorn), one way."""

from __future__ import annotations

import signal
import subprocess
from typing import Any


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
