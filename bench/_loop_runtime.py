"""bench/loop.py's runtime: a copy of this repository (committed code, every revision at
initial-scale 0, training on every arrival), started with `troupe up --detach` from the
copy's own library, and always stopped, killing what `troupe down` could not.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil


def copy_project(folder: Path) -> Path:
    project = folder / "project"
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(["git", "clone", "-q", str(repo), str(project)], check=True)
    config = project / "knative" / "300-config.yaml"
    text = config.read_text()
    # Absent, the trainer's default is `always` already; see the module docstring.
    config.write_text(re.sub(r"(?m)^(\s*TROUPE_TRAIN_ON_ARRIVAL:).*$", r"\1 always", text))
    # Every revision starts at zero (see the module docstring), beside each min-scale.
    for manifest in (project / "knative").glob("*.yaml"):
        manifest.write_text(re.sub(
            r'(?m)^(\s*)(autoscaling\.knative\.dev/min-scale: "0")$',
            r'\1\2\n\1autoscaling.knative.dev/initial-scale: "0"', manifest.read_text()))
    return project


def troupe_command(project: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """The `troupe` command run from the copy: the runtime and every function it starts
    import the copy's library (committed code), not a working tree being edited."""
    env = {**os.environ, "PYTHONPATH": str(project / "shared")}
    command = [sys.executable, "-c", "from troupe.cli import main; main()", *args,
               "--project", str(project)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def up(project: Path, *options: str, grace_period_s: float) -> dict[str, Any]:
    started = troupe_command(project, "up", "--detach",
                      "--grace-period", str(grace_period_s), *options, timeout=180)
    if started.returncode != 0:
        raise RuntimeError(f"troupe up failed: {started.stderr.strip()[-1500:]}")
    info: dict[str, Any] = json.loads((project / ".troupe" / "runtime.json").read_text())
    return info


def down(project: Path, pid: int | None) -> None:
    """`troupe down`; if that fails, kill the runtime and every process under it (the
    functions run in sessions of their own, so its process group is not enough)."""
    try:
        stopped = troupe_command(project, "down", timeout=90)
        if stopped.returncode == 0:
            return
        print(f"troupe down failed: {stopped.stderr.strip()}", file=sys.stderr)
    except subprocess.TimeoutExpired:
        print("troupe down did not return within 90 s", file=sys.stderr)
    if pid is not None:
        for process in [pid, *descendants(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found by parent PID (see coldstart._children)."""
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
