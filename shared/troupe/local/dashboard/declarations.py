"""What each deployed function declares it consumes, read from its app as gunicorn builds it.

`consumed_types(app)` answers from the app that a function's main.py builds; building it
imports the function's own libraries (scikit-learn, pandas...), which the runtime itself
must not load. So a child process builds every function's app once, with the environment
the runtime gives the functions, and prints the declarations as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)
TIMEOUT_S: Final = 120.0
# Spans from this child would be the declarations' own, not any run's.
_NOT_PASSED_ON: Final = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
                         "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@dataclass(frozen=True)
class Declared:
    """A function's declaration: the CloudEvent types it consumes, or any type."""

    types: tuple[str, ...]
    any: bool = False
    error: str | None = None  # why the app could not be built


class Declarations:
    """Read in the background once asked; `get` answers None until they are known."""

    def __init__(self, functions: Path, environment: Mapping[str, str]) -> None:
        self._functions = functions
        self._environment = dict(environment)
        self._lock = threading.Lock()
        self._known: dict[str, Declared] = {}
        self._asked: set[str] = set()

    def get(self, folders: Iterable[str]) -> dict[str, Declared | None]:
        """What each folder declares; folders not read yet are read in the background."""
        wanted = set(folders)
        with self._lock:
            missing = sorted(wanted - self._asked)
            self._asked.update(missing)
            known = {folder: self._known.get(folder) for folder in wanted}
        if missing:
            threading.Thread(target=self._read, args=(missing,), name="declarations",
                             daemon=True).start()
        return known

    def _read(self, folders: list[str]) -> None:
        environment = {**os.environ, **self._environment}
        for name in _NOT_PASSED_ON:
            environment.pop(name, None)
        command = [sys.executable, "-m", "troupe.local.dashboard.declared",
                   str(self._functions), *folders]
        try:
            done = subprocess.run(command, env=environment, capture_output=True, text=True,
                                  timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)
            found = json.loads(done.stdout or "{}")
        except (subprocess.TimeoutExpired, ValueError) as error:
            found = {folder: {"error": f"the declarations could not be read: {error}"}
                     for folder in folders}
        with self._lock:
            for folder in folders:
                entry = found.get(folder) or {"error": "no declaration came back"}
                self._known[folder] = Declared(tuple(entry.get("types") or ()),
                                               bool(entry.get("any")), entry.get("error"))
