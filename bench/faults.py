"""What each fault costs: events sent, acknowledged, delivered, dead-lettered (or parked),
lost, duplicated, and the time to recover, one row per scenario.

The scenarios share one Tansu (the last one kills it), each with a data plane of its
own and a sink on loopback. A producer
posts numbered events one after the other (sending again after a 503, as a producer
honouring Retry-After does) while the fault is injected; then the sinks and the parking
topic are read. Lost means acknowledged with 202 and never delivered, dead-lettered or
parked. With the embedded Kafka, what it held when it died is lost by design (the
README says so); that row shows how much. Time to recover is from the fault to the
first event the ingress acknowledged after it.

Each figure is "accounted for" (delivered, dead-lettered or parked, each event once)
beside the events acknowledged, so 1.00x means nothing was lost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml
from troupe.local.eventing.broker import DataPlane
from troupe.local.eventing.broker.parking import TRIGGER, read_parked
from troupe.local.host.kafka import TansuBroker, TansuSupervisor

from bench.report import Figure, render

NAME = "faults"
EVENTS = 400
NAMESPACE = "faults"


class Sink:
    """Records (path, ce-id) of what it acknowledged; `mode` says how it answers."""

    def __init__(self) -> None:
        self.mode = "ok"  # ok | fail | hang
        self.acknowledged: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = "ok" if self.path.endswith("-dead") and sink.mode != "fail" else sink.mode
                if mode == "hang":
                    time.sleep(5)  # the sink's slowness: past the Trigger's timeout
                status = {"fail": 500, "hang": 503}.get(mode, 202)
                if status == 202:
                    with sink._lock:
                        sink.acknowledged.setdefault(self.path, []).append(
                            self.headers.get("ce-id", ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def ids(self, path: str) -> list[str]:
        with self._lock:
            return list(self.acknowledged.get(path, []))

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Producer:
    """Posts EVENTS numbered events, again after each 503, and notes what was acknowledged."""

    url: Callable[[], str]
    prefix: str
    acknowledged: dict[str, float] = field(default_factory=dict)  # id -> when
    sent: int = 0

    def run(self, between: Callable[[int], None] = lambda _: None) -> None:
        session = requests.Session()
        for number in range(EVENTS):
            between(number)
            event_id = f"{self.prefix}-{number}"
            self.sent += 1
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    answer = session.post(self.url(), data=b"{}", timeout=15, headers={
                        "ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/bench",
                        "ce-type": "bench.fault", "content-type": "application/json"})
                except requests.RequestException:
                    session = requests.Session()
                    time.sleep(0.2)  # the data plane is restarting: try again shortly
                    continue
                if answer.status_code == 202:
                    self.acknowledged[event_id] = time.monotonic()
                    break
                time.sleep(float(answer.headers.get("Retry-After", "0.2")) / 5)


@dataclass
class Row:
    scenario: str
    sent: int
    acknowledged: int
    delivered: int
    dead_lettered: int
    lost: int
    accounted: int  # acknowledged events delivered, dead-lettered or parked
    duplicated: int
    recover_s: float


def _resources(broker: str, sink: Sink, delivery: dict[str, object]) -> list[dict[str, object]]:
    return [{"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
             "metadata": {"name": broker, "namespace": NAMESPACE}},
            {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
             "metadata": {"name": f"{broker}-t", "namespace": NAMESPACE},
             "spec": {"broker": broker, "subscriber": {"uri": f"{sink.url}/{broker}"},
                      "delivery": {**delivery, "deadLetterSink": {
                          "uri": f"{sink.url}/{broker}-dead"}}}}]


def _settle(count: Callable[[], int], quiet_s: float = 2.0, limit_s: float = 60.0) -> None:
    """Wait until `count()` stops changing for `quiet_s` (deliveries have drained)."""
    last, since, deadline = -1, time.monotonic(), time.monotonic() + limit_s
    while time.monotonic() < deadline:
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.1)


def _row(scenario: str, producer: Producer, sink: Sink, broker: str, servers: str,
         fault_at: float | None) -> Row:
    path, dead = f"/{broker}", f"/{broker}-dead"

    def parked() -> list[str]:
        return [p.headers.get("ce_id", "") for p in read_parked(servers)
                if p.headers.get(TRIGGER) == f"{NAMESPACE}/{broker}-t"]

    _settle(lambda: len(sink.ids(path)) + len(sink.ids(dead)) + len(parked()))
    delivered, letters, kept = sink.ids(path), sink.ids(dead), parked()
    acknowledged = set(producer.acknowledged)
    accounted = set(delivered) | set(letters) | set(kept)
    after = [at for at in producer.acknowledged.values() if fault_at is not None and
             at >= fault_at]
    recover = min(after) - fault_at if after and fault_at is not None else 0.0
    return Row(scenario, producer.sent, len(acknowledged), len(set(delivered)),
               len(set(letters) | set(kept)), len(acknowledged - accounted),
               len(acknowledged & accounted), len(delivered) - len(set(delivered)), recover)


@contextmanager
def _plane(servers: str, broker: str, sink: Sink,
           delivery: dict[str, object]) -> Iterator[DataPlane]:
    with DataPlane(servers, default_namespace=NAMESPACE) as plane:
        for resource in _resources(broker, sink, delivery):
            (plane.add_broker if resource["kind"] == "Broker" else plane.add_trigger)(resource)
        plane.wait_ready(30)
        yield plane


def _in_process(scenario: str, servers: str, sink: Sink, delivery: dict[str, object],
                fault: Callable[[DataPlane], None] | None,
                tansu: TansuBroker | None = None) -> Row:
    broker = scenario.split()[0].lower()
    with _plane(servers, broker, sink, delivery) as plane:
        supervisor = TansuSupervisor(tansu, plane.kafka_lost).start() if tansu else None
        producer = Producer(lambda: plane.broker_url(NAMESPACE, broker), broker)
        fault_at: list[float] = []

        def between(number: int) -> None:
            if number == EVENTS // 2 and fault is not None:
                fault_at.append(time.monotonic())
                fault(plane)

        producer.run(between)
        row = _row(scenario, producer, sink, broker, servers, fault_at[0] if fault_at else None)
        if supervisor is not None:
            supervisor.stop()
        return row


def _killed_data_plane(servers: str, sink: Sink, workdir: Path) -> Row:
    broker = "sigkill"
    folder = workdir / "eventing"
    folder.mkdir()
    (folder / "300.yaml").write_text(yaml.safe_dump_all(_resources(broker, sink, {
        "retry": 5, "backoffDelay": "PT0.05S"})))
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers}
    command = [sys.executable, "-m", "troupe.local.eventing.broker", "--eventing", str(folder)]

    def start() -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, env=env)
        assert process.stdout is not None
        return process, process.stdout.readline().strip()

    process, url = start()
    current = {"url": url}
    fault_at: list[float] = []

    def between(number: int) -> None:
        nonlocal process
        if number == EVENTS // 2:
            fault_at.append(time.monotonic())
            process.send_signal(signal.SIGKILL)
            process.wait()
            process, current["url"] = start()

    producer = Producer(lambda: f"{current['url']}/{NAMESPACE}/{broker}", broker)
    try:
        producer.run(between)
        return _row("SIGKILL of the data plane", producer, sink, broker, servers,
                    fault_at[0])
    finally:
        process.terminate()
        process.wait(15)


def run() -> list[Figure]:
    rows: list[Row] = []
    fast = {"retry": 3, "backoffDelay": "PT0.05S", "timeout": "PT1S"}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        sink = Sink()
        stack.callback(sink.stop)
        tansu = stack.enter_context(TansuBroker(workdir / "tansu"))
        servers = tansu.bootstrap_servers

        def refuse(_: DataPlane) -> None:
            sink.mode = "fail"

        def hang(_: DataPlane) -> None:
            sink.mode = "hang"

        rows.append(_in_process("None (baseline)", servers, sink, fast, None))
        rows.append(_killed_data_plane(servers, sink, workdir))
        sink.mode = "ok"
        rows.append(_in_process("Refusing dead-letter sink (parked)", servers, sink, fast,
                                refuse))
        sink.mode = "ok"
        rows.append(_in_process("Hanging sink (1 s timeout)", servers, sink,
                                {"retry": 1, "backoffDelay": "PT0.05S", "timeout": "PT1S"},
                                hang))
        sink.mode = "ok"
        rows.append(_in_process("Kafka killed and restarted", servers, sink, fast,
                                lambda _: os.kill(tansu.pid or 0, signal.SIGKILL), tansu))
    print(_table(rows), file=sys.stderr)
    return [Figure(NAME, f"{row.scenario}: accounted for (lost {row.lost}, duplicated "
                   f"{row.duplicated}, recovered in {row.recover_s:.1f} s)",
                   row.accounted, "events", "acknowledged",
                   row.acknowledged) for row in rows]


def _table(rows: list[Row]) -> str:
    headers = ("scenario", "sent", "acknowledged", "delivered", "dead-lettered", "lost",
               "duplicated", "time to recover")
    cells = [(r.scenario, str(r.sent), str(r.acknowledged), str(r.delivered),
              str(r.dead_lettered), str(r.lost), str(r.duplicated), f"{r.recover_s:.1f} s")
             for r in rows]
    widths = [max(len(c) for c in column) for column in zip(headers, *cells, strict=True)]
    return "\n".join(" | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
                     for line in (headers, *cells))


if __name__ == "__main__":
    print(render(run()))
