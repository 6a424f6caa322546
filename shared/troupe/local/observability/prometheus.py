"""A private Prometheus for the local runtime and the monitoring tests.

It runs Debian's `prometheus` binary on 127.0.0.1 with a generated configuration: one
scrape job whose targets come from `file_sd` files, so targets can be changed while it
runs (`set_targets`) as function processes come and go, and a job for each target that
wants a bearer token (the local API). Its data and its log live in the given work
directory. It runs without `--web.enable-lifecycle`: nothing here reloads or stops it
over HTTP, and with it a cross-site POST to `/-/quit` would stop it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import requests
import yaml

from troupe.local.errors import LocalError
from troupe.local.host.loopback_http import free_port
from troupe.local.host.private_files import write_owner_only
from troupe.local.host.processes import ChildProcess

BINARY: Final = "prometheus"
_SD_JOB: Final = "troupe"
_START_TIMEOUT: Final = 30.0


class PrometheusError(LocalError, RuntimeError):
    """Prometheus could not be started, or did not answer as expected."""


@dataclass(frozen=True)
class BearerTarget:
    """A target scraped over HTTPS with a bearer token: "127.0.0.1:port", the token, and
    the certificate authority its certificate is checked against."""

    address: str
    token: str
    ca_file: Path


def find_prometheus() -> str | None:
    """The path of the `prometheus` binary on PATH, or None (apt-get install prometheus)."""
    return shutil.which(BINARY)


class PrometheusServer(ChildProcess):
    """`with PrometheusServer(workdir) as prom: prom.set_targets("predictor", [...])`."""

    stop_timeout = 10.0  # it flushes its head block on SIGTERM

    def __init__(
        self,
        workdir: Path,
        scrape_interval: str = "1s",
        *,
        binary: str | None = None,
        retention: str = "1d",
        bearer_jobs: Mapping[str, BearerTarget] | None = None,
    ) -> None:
        """`bearer_jobs`: the targets that want HTTPS and a token, as the local API's
        /metrics does, by job."""
        super().__init__()
        self._bearer_jobs = dict(bearer_jobs or {})
        self.workdir = Path(workdir)
        self.scrape_interval = scrape_interval
        self.retention = retention
        self._binary = binary
        self._port: int | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def targets_dir(self) -> Path:
        return self.workdir / "targets"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    def token_path(self, job: str) -> Path:
        return self.workdir / f"{job}.token"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def url(self) -> str:
        if self._port is None:
            raise PrometheusError("Prometheus is not running: call start() first")
        return f"http://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Self:
        if self.running:
            return self
        binary = self._binary or find_prometheus()
        if binary is None:
            raise PrometheusError(
                "the prometheus binary is not on PATH: install it (apt-get install prometheus)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self._write_config()
        # The free port is probed then released, so another process may take it in
        # between: try a few ports before giving up.
        last_error = ""
        for _ in range(3):
            self._port = free_port()
            self._launch(binary)
            try:
                self._wait_ready()
                return self
            except PrometheusError as error:
                last_error = str(error)
                self.stop()
        raise PrometheusError(last_error)

    def _launch(self, binary: str) -> None:
        args = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self._port}",
            "--log.level=warn",
        ]
        try:
            # start_new_session: a Ctrl-C in the terminal is ours to forward
            self._spawn(args, cwd=self.workdir, start_new_session=True)
        except OSError as error:
            raise PrometheusError(
                f"cannot run {binary}: {error}; install prometheus (apt-get install "
                "prometheus) or pass the path of its binary"
            ) from None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with code {self._process.returncode}; "
                    f"see {self.log_path}: {self._log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise PrometheusError(
            f"prometheus was not ready after {_START_TIMEOUT:.0f}s; see {self.log_path}"
        )

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    # -- configuration -----------------------------------------------------------------
    def _write_config(self) -> None:
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": _SD_JOB,
                    # Each target group names its own `job` label; Prometheus keeps a job
                    # label a target already has instead of overwriting it.
                    "file_sd_configs": [
                        {"files": [str(self.targets_dir / "*.json")], "refresh_interval": "1s"}
                    ],
                },
                *(self._bearer_job(job, target) for job, target in self._bearer_jobs.items()),
            ],
        }
        _write_atomically(self.config_path, yaml.safe_dump(config, sort_keys=False))

    def _bearer_job(self, job: str, target: BearerTarget) -> dict[str, Any]:
        # The token goes in a file of its own, owner-only, not into the configuration; an
        # earlier run's file_sd targets for the job would be scraped without it.
        write_owner_only(self.token_path(job), target.token.encode())
        (self.targets_dir / f"{job}.json").unlink(missing_ok=True)
        return {"job_name": job, "scheme": "https",
                "static_configs": [{"targets": [target.address]}],
                "tls_config": {"ca_file": str(target.ca_file)},
                "authorization": {"type": "Bearer",
                                  "credentials_file": str(self.token_path(job))}}

    def set_targets(
        self, job: str, targets: list[str], labels: Mapping[str, str] | None = None
    ) -> None:
        """Scrape `targets` ("127.0.0.1:port") under `job`, replacing that job's targets.

        Prometheus watches the file and picks up the change within about a second.
        An empty list stops scraping the job.
        """
        if not job or "/" in job or job.startswith("."):
            raise ValueError(f"job {job!r} must be a plain name (it names a file)")
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        groups = (
            [{"targets": list(targets), "labels": {**(labels or {}), "job": job}}]
            if targets
            else []
        )
        _write_atomically(self.targets_dir / f"{job}.json", json.dumps(groups, indent=2))

    # -- queries -----------------------------------------------------------------------
    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query (raises PrometheusError on an error)."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise PrometheusError(f"query {promql!r} failed: {body.get('error', response.text)}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self,
        promql: str,
        condition: Callable[[list[dict[str, Any]]], bool] = bool,
        *,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll `promql` until `condition(result)` holds; return that result.

        Raises TimeoutError with the last result, so a test failure says what was seen.
        """
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(promql)
            if condition(result):
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{promql!r} did not satisfy the condition in {timeout}s: {result}"
                )
            time.sleep(0.2)

    def wait_for_scrape(self, job: str, *, count: int = 1, timeout: float = 30.0) -> None:
        """Wait until `count` targets of `job` have been scraped successfully."""
        self.wait_for(
            f'sum(up{{job="{job}"}})',
            lambda result: bool(result) and float(result[0]["value"][1]) >= count,
            timeout=timeout,
        )


def _write_atomically(path: Path, text: str) -> None:
    # Prometheus may read the file at any moment; it must never see half of it.
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


__all__ = ["PrometheusError", "PrometheusServer", "find_prometheus"]
