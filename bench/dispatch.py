"""Ingress -> Kafka -> Trigger -> sink throughput and latency, beside the raw floor.

1 KiB events go from the Broker ingress to a sink that answers 202. The data plane runs
as `python -m troupe.local.eventing.broker` and the sink in its own process, as in `troupe up`.
The floor, measured in the same run against the same Kafka and the same sink, is raw
kafka-python produce+consume and a raw HTTP POST loop: the data plane does both, so the
slower of the two bounds its throughput.

Throughput is measured with CONNECTIONS concurrent keep-alive clients, for the data plane
and for the raw HTTP floor alike. Latency is end to end (the client stamps `ce-sentat` as
it POSTs, the sink reads it on arrival) at a quarter of the measured maximum rate. Its
floor is what the data plane cannot skip, measured at the same rate: a raw kafka-python
produce with acks=all until its acknowledgement, plus a raw HTTP POST to the sink. (The
data plane hands its own writes to Triggers on acknowledgement, so no fetch is in the path.)

CESQL filters: the same 10 Triggers (one matches) once with exact type filters and once
with CESQL filters of three predicates each, the type test last so that every predicate
runs for every event, measured in the same interleaved rounds; and the filters alone,
evaluated in this process over the same headers, as nanoseconds per event for all 10.

Idle cost: the CPU the data plane (every Trigger on every Broker) uses over IDLE_WINDOW_S
with no events, beside plain kafka-python consumers with default settings watching the
same topics over the same seconds (/proc/<pid>/stat, user + system time).

Tracing: the 1-Trigger throughput of a data plane with its spans on, beside one alike with
them off, in the same interleaved rounds (bench/dispatch_tracing.py).

`python -m bench.dispatch cesql` measures only the CESQL rows, `... tracing` only tracing.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from troupe.local.host.kafka import TansuBroker, bootstrap_servers_from_env

from bench.dispatch_tracing import tracing_figures
from bench.kafka_floors import raw_kafka_rate, raw_produce_latency
from bench.report import Figure

NAME = "dispatch"
PAYLOAD = b'"' + b"x" * 1022 + b'"'  # 1 KiB of JSON
CONNECTIONS = 32  # concurrent client connections for throughput (data plane and floor)
COUNT = 3000
ROUNDS = 3  # throughput rounds; each throughput figure and its floor is their median
NAMESPACE = "bench"
IDLE_WINDOW_S = 10.0
BROKERS = ("one", "ten", "cesql")
# Three predicates, of the kinds users reach for CESQL for; the type test comes last, so
# the nine Triggers that do not match still evaluate all three for every event.
CESQL_FILTER = ("source LIKE '/bench%' AND datacontenttype IN ('application/json', "
                "'text/json') AND type = '{event_type}'")
EVALUATIONS = 200_000

# The idle baseline: what a plain kafka-python consumer costs while it waits for records,
# one per broker topic, with the library's default settings.
_IDLE_CONSUMERS = r'''
import sys
from kafka import KafkaConsumer, TopicPartition
consumers = []
for topic in sys.argv[2:]:
    consumer = KafkaConsumer(bootstrap_servers=sys.argv[1], enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)])
    consumer.poll(timeout_ms=100)
    consumers.append(consumer)
print("ready", flush=True)
while True:
    for consumer in consumers:
        consumer.poll(timeout_ms=1000)
'''

_SINK = r'''
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
lock = threading.Lock(); count = [0]; latencies = []
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sent = self.headers.get("ce-sentat")
        with lock:
            count[0] += 1
            if sent: latencies.append(time.time() - float(sent))
        self.send_response(202); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        with lock:
            body = json.dumps({"count": count[0], "latencies": latencies}).encode()
            if self.path == "/reset": count[0] = 0; latencies.clear()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.end_headers(); self.wfile.write(body)
class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # CONNECTIONS clients connect at once
server = Server(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True); server.serve_forever()
'''


def _get(port: int, path: str) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    result: dict[str, Any] = json.loads(connection.getresponse().read())
    connection.close()
    return result


def _wait_count(port: int, count: int, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _get(port, "/stats")["count"] >= count:
            return time.monotonic()
        time.sleep(0.01)
    raise TimeoutError(f"the sink got fewer than {count} events in {timeout} s")


def _post_many(port: int, path: str, count: int, headers_for: Any, rate: float = 0.0) -> None:
    """POST `count` events from CONNECTIONS keep-alive connections (paced when rate > 0)."""
    local = threading.local()
    start = time.monotonic()

    def post(number: int) -> None:
        if rate:
            delay = start + number / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the load, not synchronisation
        connection = getattr(local, "c", None)
        if connection is None:
            connection = local.c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("POST", path, body=PAYLOAD, headers=headers_for(number))
        response = connection.getresponse()
        response.read()
        if response.status >= 300:
            raise RuntimeError(f"POST {path} answered {response.status}")

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(post, range(count)))


def _event_headers(event_type: str) -> Any:
    def headers(number: int) -> dict[str, str]:
        return {"ce-specversion": "1.0", "ce-id": str(number), "ce-source": "/bench",
                "ce-type": event_type, "content-type": "application/json",
                "ce-sentat": repr(time.time())}
    return headers


def _ten_types() -> list[str]:
    return ["bench.match", *(f"bench.other.{n}" for n in range(9))]


def _exact_spec(event_type: str) -> dict[str, Any]:
    return {"filter": {"attributes": {"type": event_type}}}


def _cesql_spec(event_type: str) -> dict[str, Any]:
    return {"filters": [{"cesql": CESQL_FILTER.format(event_type=event_type)}]}


def _eventing(folder: Path, sink_url: str) -> None:
    def trigger(name: str, broker: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {"broker": broker, "subscriber": {"uri": sink_url}, **spec}}

    documents: list[dict[str, Any]] = []
    for broker in BROKERS:
        documents.append({"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                          "metadata": {"name": broker, "namespace": NAMESPACE}})
    documents.append(trigger("one-match", "one", _exact_spec("bench.match")))
    for number, event_type in enumerate(_ten_types()):
        documents.append(trigger(f"ten-{number}", "ten", _exact_spec(event_type)))
        documents.append(trigger(f"cesql-{number}", "cesql", _cesql_spec(event_type)))
    (folder / "300-bench.yaml").write_text(yaml.safe_dump_all(documents))


def _filter_nanoseconds(spec_of: Any) -> float:
    """Nanoseconds to run the 10 Triggers' filters over one event's Kafka headers."""
    from troupe.local.eventing.broker.filters import compile_trigger_filter, header_attributes

    filters = [compile_trigger_filter(spec_of(t), "bench") for t in _ten_types()]
    headers = [(f"ce_{k[3:]}" if k.startswith("ce-") else k, v.encode())
               for k, v in _event_headers("bench.match")(0).items()]
    attributes = header_attributes(headers)
    started = time.perf_counter()
    for _ in range(EVALUATIONS):
        for event_filter in filters:
            event_filter(attributes)
    return (time.perf_counter() - started) / EVALUATIONS * 1e9


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far (proc(5): fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_cpu_percent(pids: list[int], window_s: float) -> list[float]:
    """Percent of one core each process used over the same `window_s` of idleness."""
    before = [_cpu_seconds(pid) for pid in pids]
    started = time.monotonic()
    time.sleep(window_s)  # measuring an idle interval, not synchronisation
    elapsed = time.monotonic() - started
    return [100 * (_cpu_seconds(pid) - b) / elapsed for pid, b in zip(pids, before, strict=True)]


def _start(stack: ExitStack, command: list[str], env: dict[str, str],
           pids: list[int] | None = None) -> str:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env,
                               stderr=subprocess.DEVNULL)
    if pids is not None:
        pids.append(process.pid)
    def stop() -> None:
        process.terminate()
        process.wait(10)

    stack.callback(stop)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line:
        raise RuntimeError(f"{command[2:]} printed nothing and exited with {process.poll()}")
    return line


def _throughput(ingress: int, sink: int, broker: str, namespace: str = NAMESPACE) -> float:
    _get(sink, "/reset")
    started = time.monotonic()
    _post_many(ingress, f"/{namespace}/{broker}", COUNT, _event_headers("bench.match"))
    return COUNT / (_wait_count(sink, COUNT) - started)


def _cesql_figures(tens: list[float], cesqls: list[float]) -> list[Figure]:
    exact_ns, cesql_ns = _filter_nanoseconds(_exact_spec), _filter_nanoseconds(_cesql_spec)
    same = f"the same 10 triggers with exact type filters, same {len(tens)} rounds"
    return [
        Figure(NAME, f"throughput ({CONNECTIONS} connections, median of {len(cesqls)}), 10 "
               "cesql triggers (3 predicates each, 1 matches)", statistics.median(cesqls),
               "events/s", same, statistics.median(tens)),
        Figure(NAME, f"filters of 10 cesql triggers, per event (mean of {EVALUATIONS:,})",
               cesql_ns, "ns", "the same 10 with exact type filters", exact_ns),
    ]


def _ten_and_cesql(ingress: int, sink: int, round_number: int) -> tuple[float, float]:
    """One round of both; which goes first alternates, so neither gains from its place."""
    if round_number % 2:
        cesql = _throughput(ingress, sink, "cesql")
        return _throughput(ingress, sink, "ten"), cesql
    ten = _throughput(ingress, sink, "ten")
    return ten, _throughput(ingress, sink, "cesql")


def _only_cesql(ingress: int, sink: int) -> list[Figure]:
    _throughput(ingress, sink, "ten")  # warm-up
    tens, cesqls = [], []
    for round_number in range(ROUNDS):
        ten, cesql = _ten_and_cesql(ingress, sink, round_number)
        tens.append(ten)
        cesqls.append(cesql)
    return _cesql_figures(tens, cesqls)


def _tracing(stack: ExitStack, workdir: Path, env: dict[str, str], sink: int) -> list[Figure]:
    def throughput(ingress: int, sink_port: int, namespace: str, broker: str) -> float:
        return _throughput(ingress, sink_port, broker, namespace)

    return tracing_figures(stack, workdir, env, sink, _start, throughput, _cpu_seconds, COUNT,
                           CONNECTIONS, NAME)


def run(only_cesql: bool = False, only_tracing: bool = False) -> list[Figure]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        servers = bootstrap_servers_from_env() or stack.enter_context(
            TansuBroker(workdir)).bootstrap_servers
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers}
        sink = int(_start(stack, [sys.executable, "-c", _SINK], env))
        if only_tracing:  # two data planes of its own, nothing else running
            return _tracing(stack, workdir, env, sink)
        (workdir / "eventing").mkdir()
        _eventing(workdir / "eventing", f"http://127.0.0.1:{sink}/")
        pids: list[int] = []
        ingress_url = _start(stack, [sys.executable, "-m", "troupe.local.eventing.broker",
                                     "--eventing", str(workdir / "eventing")], env, pids)
        ingress = int(ingress_url.rsplit(":", 1)[1])
        if only_cesql:
            return _only_cesql(ingress, sink)
        _start(stack, [sys.executable, "-c", _IDLE_CONSUMERS, servers,
                       *(f"knative-broker-{NAMESPACE}-{b}" for b in BROKERS)], env, pids)
        idle_plane, idle_consumers = _idle_cpu_percent(pids, IDLE_WINDOW_S)

        # Throughput and its floor, in interleaved rounds, each figure the median of its
        # rounds: these machines swing by a fifth from one minute to the next.
        kafka_rate = raw_kafka_rate(servers, COUNT, PAYLOAD)
        _throughput(ingress, sink, "one")  # warm-up: connections, JIT-free but cache-warm
        http_rates, ones, tens, cesqls = [], [], [], []
        for round_number in range(ROUNDS):
            _get(sink, "/reset")
            started = time.monotonic()
            _post_many(sink, "/", COUNT, _event_headers("bench.raw"))
            http_rates.append(COUNT / (time.monotonic() - started))
            ones.append(_throughput(ingress, sink, "one"))
            ten, cesql = _ten_and_cesql(ingress, sink, round_number)
            tens.append(ten)
            cesqls.append(cesql)
        http_rate, one, ten = (statistics.median(rates) for rates in (http_rates, ones, tens))
        floor = min(kafka_rate, http_rate)
        floor_name = (f"floor: min(raw kafka-python produce+consume {kafka_rate:,.0f}, "
                      f"raw HTTP POST loop {http_rate:,.0f}), median of {ROUNDS}")

        # latency at a quarter of the maximum rate, and the floor's at the same rate
        rate = one / 4
        samples = int(rate * 3)
        _get(sink, "/reset")
        _post_many(ingress, f"/{NAMESPACE}/one", samples, _event_headers("bench.match"), rate)
        _wait_count(sink, samples)
        latencies = sorted(_get(sink, "/stats")["latencies"])
        _get(sink, "/reset")
        _post_many(sink, "/", samples, _event_headers("bench.raw"), rate)
        raw_http = sorted(_get(sink, "/stats")["latencies"])
        raw_kafka = raw_produce_latency(servers, rate, samples, PAYLOAD)
        traced = _tracing(stack, workdir, env, sink)

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] * 1000

    floor_latency = (f"floor: raw kafka-python produce until acks=all + raw HTTP POST, "
                     f"at {rate:,.0f} ev/s")
    http_name = f"raw HTTP POST to the sink at {rate:,.0f} ev/s"
    kafka_name = f"raw kafka-python produce until acks=all at {rate:,.0f} ev/s"
    throughput = f"throughput ({CONNECTIONS} connections, median of {ROUNDS})"
    return [
        Figure(NAME, f"{throughput}, 1 trigger", one, "events/s", floor_name, floor),
        Figure(NAME, f"{throughput}, 10 triggers (1 matches)", ten, "events/s", floor_name,
               floor),
        Figure(NAME, f"latency p50 at {rate:,.0f} ev/s", pct(latencies, 0.5), "ms",
               floor_latency, pct(raw_kafka, 0.5) + pct(raw_http, 0.5)),
        Figure(NAME, f"latency p99 at {rate:,.0f} ev/s", pct(latencies, 0.99), "ms",
               floor_latency, pct(raw_kafka, 0.99) + pct(raw_http, 0.99)),
        Figure(NAME, "latency p50 of a raw produce until acks=all (for reference)",
               pct(raw_kafka, 0.5), "ms", http_name, pct(raw_http, 0.5)),
        Figure(NAME, "latency p99 of a raw produce until acks=all (for reference)",
               pct(raw_kafka, 0.99), "ms", http_name, pct(raw_http, 0.99)),
        Figure(NAME, f"idle CPU, data plane with {1 + 2 * len(_ten_types())} triggers on "
               f"{len(BROKERS)} brokers "
               f"({IDLE_WINDOW_S:.0f} s)", idle_plane, "% of a core",
               f"{len(BROKERS)} raw kafka-python consumers (default settings), one per broker "
               "topic, idle", idle_consumers),
        Figure(NAME, "latency mean (for reference)", statistics.fmean(latencies) * 1000, "ms",
               kafka_name, statistics.fmean(raw_kafka) * 1000),
        *_cesql_figures(tens, cesqls),
        *traced,
    ]


if __name__ == "__main__":
    from bench.report import render

    print(render(run(only_cesql=sys.argv[1:] == ["cesql"],
                     only_tracing=sys.argv[1:] == ["tracing"])))
