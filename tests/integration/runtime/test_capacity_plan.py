"""`troupe capacity plan` against a runtime with traffic and the real Prometheus it runs."""

from __future__ import annotations

import json
import random
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from support.polling import wait_until
from troupe.capacity import WaitSLO, Workload, ordered_partitions, servers_for_slo
from troupe.cli import cli
from troupe.knative import Cluster
from troupe.local.runtime import Runtime

from .conftest import StartRuntime, service, service_status

pytestmark = [pytest.mark.prometheus, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("prometheus") is None,
                                 reason="the prometheus binary is not on PATH")]

RATE, SLEEP, REQUESTS = 5.0, 0.1, 60


def _drive_poisson(url: str, seed: int = 11) -> list[int]:
    """REQUESTS open-loop arrivals at RATE per second: each is sent at its own time,
    whether or not earlier ones were answered (the arrival times are paced, which is
    the load's definition, not a wait for anything)."""
    rng = random.Random(seed)
    due = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        futures = []
        for _ in range(REQUESTS):
            due += rng.expovariate(RATE)
            time.sleep(max(0.0, due - time.monotonic()))
            futures.append(pool.submit(requests.get, f"{url}/?sleep={SLEEP}", timeout=60))
        return [f.result().status_code for f in futures]


def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    body = requests.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=5).json()
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _drive_and_scrape(runtime: Runtime, prometheus: str, url: str) -> None:
    """Poisson traffic at echo, then wait until Prometheus has scraped all of it."""
    assert _drive_poisson(url) == [200] * REQUESTS
    arrivals = 'sum(http_server_request_duration_seconds_count{kn_service_name="echo"})'
    wait_until(lambda: [r for r in _query(prometheus, arrivals)
                        if float(r["value"][1]) >= REQUESTS + 1], 60,
               "Prometheus to scrape every request")


def _trigger(name: str, *, ordered: bool) -> dict[str, Any]:
    annotations = {"kafka.eventing.knative.dev/delivery.order": "ordered"} if ordered else {}
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"broker": "default", "filter": {"attributes": {"type": "dev.example.a"}},
                     "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1",
                                            "kind": "Service", "name": "echo"}}}}


def test_plan_reports_the_measured_load_and_what_meets_the_slo(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo", concurrency=1, annotations={
        "autoscaling.knative.dev/max-scale": "2"})], prometheus=True)
    prometheus = runtime.status()["prometheus"]
    assert prometheus, "the runtime did not start prometheus"
    url = service_status(runtime, "echo")["url"]
    assert requests.get(url, timeout=30).status_code == 200  # warm, as a running service is
    # A Prometheus started a moment ago finds its targets after a few seconds; the load
    # starts once it scrapes the fronts, as it would on a runtime that has been up a while.
    wait_until(lambda: _query(prometheus, 'kn_revision_pods_count{kn_service_name="echo"}'),
               30, "Prometheus to scrape the runtime")

    _drive_and_scrape(runtime, prometheus, url)

    result = CliRunner().invoke(cli, [
        "capacity", "plan", "echo", "--window", "1m", "--slo", "200ms@p95", "--json",
        "--prometheus", prometheus, "--kubeconfig", str(runtime.kubeconfig)])

    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)["services"]
    assert (row["service"], row["namespace"], row["slo"]) == ("echo", "troupe", "200ms@p95")
    # 60 requests within the last minute: rate() over 1m is about 1 per second; over
    # 12 s (the peak's window for a 1m window) it sees the burst's 5 per second.
    assert 0.8 < row["arrival_rate"] < 1.3
    assert row["peak_arrival_rate"] > 2.5
    assert SLEEP <= row["service_time_s"] < SLEEP + 0.1
    assert row["service_scv"] is not None and row["service_scv"] >= 0
    assert row["container_concurrency"] == 1
    assert row["instances"] >= 1
    assert row["servers"] == row["instances"] * 1
    assert row["utilization"] == pytest.approx(
        row["arrival_rate"] * row["service_time_s"] / row["servers"])
    assert row["predicted_mean_wait_s"] is not None and row["predicted_p95_wait_s"] is not None
    assert row["measured_mean_wait_s"] is not None and row["measured_mean_wait_s"] >= 0
    assert row["measured_p95_wait_s"] is not None
    workload = Workload(row["arrival_rate"], row["service_time_s"],
                        service_scv=row["service_scv"])
    recommended = row["recommended"]
    assert recommended["servers"] == servers_for_slo(workload, WaitSLO.parse("200ms@p95"))
    assert recommended["container_concurrency"] == 1
    assert recommended["target"] == 1  # one slot per instance
    peak = Workload(row["peak_arrival_rate"], row["service_time_s"],
                    service_scv=row["service_scv"])
    assert recommended["max_scale"] == max(servers_for_slo(peak, WaitSLO.parse("200ms@p95")),
                                           recommended["servers"])
    # About one request a second keeps a 30 s grace period from ever scaling to zero.
    assert recommended["min_scale"] == 0


def test_plan_lists_every_service_and_says_when_one_had_no_traffic(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime([service("echo"), service("idle")], prometheus=True)
    prometheus = runtime.status()["prometheus"]
    assert prometheus
    requests.get(service_status(runtime, "echo")["url"], timeout=30)
    wait_until(lambda: _query(prometheus, 'kn_revision_pods_count{kn_service_name="echo"}'),
               30, "Prometheus to scrape the runtime")

    result = CliRunner().invoke(cli, [
        "capacity", "plan", "--window", "1m", "--json", "--prometheus", prometheus,
        "--kubeconfig", str(runtime.kubeconfig)])

    assert result.exit_code == 0, result.output
    rows = {row["service"]: row for row in json.loads(result.output)["services"]}
    assert set(rows) == {"echo", "idle"}
    assert rows["idle"]["arrival_rate"] is None and rows["idle"]["recommended"] is None
    assert any("no requests" in note for note in rows["idle"]["notes"])


def test_plan_without_a_prometheus_says_what_to_do(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)  # no local runtime here
    result = CliRunner().invoke(cli, ["capacity", "plan", "--json"])
    assert result.exit_code == 1
    assert "troupe up --detach" in result.output and "--prometheus" in result.output


def test_apply_patches_the_recommendation_and_sizes_each_triggers_partitions(
        start_runtime: StartRuntime) -> None:
    runtime = start_runtime(
        [service("echo", concurrency=1, annotations={"autoscaling.knative.dev/max-scale": "4"})],
        [_trigger("echo-in-order", ordered=True), _trigger("echo-any-order", ordered=False)],
        prometheus=True)
    prometheus = runtime.status()["prometheus"]
    assert prometheus
    url = service_status(runtime, "echo")["url"]
    assert requests.get(url, timeout=30).status_code == 200
    wait_until(lambda: _query(prometheus, 'kn_revision_pods_count{kn_service_name="echo"}'),
               30, "Prometheus to scrape the runtime")
    _drive_and_scrape(runtime, prometheus, url)
    command = ["capacity", "plan", "--window", "1m", "--slo", "200ms@p95", "--json",
               "--prometheus", prometheus, "--kubeconfig", str(runtime.kubeconfig)]

    result = CliRunner().invoke(cli, [*command, "--apply"])

    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    [row] = answer["services"]
    recommended = row["recommended"]
    assert row["applied"]["patch"] is not None, row["applied"]
    # The kubernetes client reads back what was applied, from the runtime's API.
    echo = Cluster.connect(runtime.kubeconfig).get_service("troupe", "echo")
    template = echo["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert (annotations["autoscaling.knative.dev/min-scale"],
            annotations["autoscaling.knative.dev/max-scale"],
            annotations["autoscaling.knative.dev/target"],
            template["spec"]["containerConcurrency"]) == (
        str(recommended["min_scale"]), str(recommended["max_scale"]),
        str(recommended["target"]), recommended["container_concurrency"])
    # The changed template made a revision, as on Knative.
    wait_until(lambda: service_status(runtime, "echo")["traffic"][0]["revisionName"]
               == "echo-00002", 60, "the patched template to become echo-00002 (probed ready)")

    triggers = {t["trigger"]: t for t in answer["triggers"]}
    assert set(triggers) == {"echo-in-order", "echo-any-order"}
    in_order, any_order = triggers["echo-in-order"], triggers["echo-any-order"]
    assert (in_order["ordered"], any_order["ordered"]) == (True, False)
    assert in_order["subscriber"] == "echo"
    assert in_order["delivery_time_s"] >= SLEEP  # echo's answered requests, wait included
    peak = max(in_order["delivery_rate"], in_order["peak_delivery_rate"])
    assert in_order["partitions"] == ordered_partitions(
        Workload(peak, in_order["delivery_time_s"], service_scv=in_order["delivery_scv"]),
        WaitSLO.parse("200ms@p95"))
    assert any_order["partitions"] == 1  # a few deliveries in flight, far below 500
    assert any("echo-any-order" in note for note in in_order["notes"])  # shared subscriber

    # Applying again changes nothing: no patch, so no revision for nothing. The tables
    # say so, and show both Triggers' partitions.
    again = CliRunner().invoke(cli, [c for c in command if c != "--json"] + ["--apply"],
                               env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert "echo: not patched: already as recommended" in again.output
    assert "Kafka partitions per Trigger" in again.output
    rows = {line.split()[1]: line for line in again.output.splitlines()
            if "echo-in-order" in line or "echo-any-order" in line}
    assert "ordered" in rows["echo-in-order"] and "unordered" in rows["echo-any-order"]
