"""Sources follow their resources in the object store: created, changed or deleted live."""

from __future__ import annotations

import threading

from troupe.local.controlplane.events import Change
from troupe.local.controlplane.kinds import KAFKASOURCE, PINGSOURCE, Kind, Obj
from troupe.local.controlplane.objects import ObjectStore, now_iso
from troupe.local.delivery import DeliveryClient
from troupe.local.eventing.sources.kafka_source import KafkaSourceRunner
from troupe.local.eventing.sources.runners import PingSourceRunner, SinkResolver
from troupe.local.host.loop import LoopThread

Runner = PingSourceRunner | KafkaSourceRunner


class SourcesController:
    def __init__(self, objects: ObjectStore, resolve_sink: SinkResolver,
                 bootstrap_servers: str | None) -> None:
        self._objects = objects
        self._resolve_sink = resolve_sink
        self._bootstrap = bootstrap_servers
        self._runners: dict[tuple[str, str, str], Runner] = {}
        # The sources' deliveries, on a loop of their own (delivery/).
        self._loop = LoopThread("sources").start()
        self._client = DeliveryClient(self._loop)
        self._lock = threading.Lock()
        objects.subscribe(self._on_change)

    def _on_change(self, change: Change, kind: Kind, obj: Obj) -> None:
        if kind not in (PINGSOURCE, KAFKASOURCE):
            return
        key = (kind.plural, obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            old = self._runners.pop(key, None)
        if old is not None:
            old.stop()
        if change == "DELETED":
            return
        runner: Runner | None = None
        problem = None
        if kind == PINGSOURCE:
            runner = PingSourceRunner(obj, self._resolve_sink, self._client)
        elif self._bootstrap is None:
            problem = "no Kafka is running (the runtime was started without the data plane)"
        else:
            runner = KafkaSourceRunner(obj, self._resolve_sink, self._bootstrap, self._client)
        if runner is not None:
            with self._lock:
                self._runners[key] = runner
        sink = self._resolve_sink(key[1], obj["spec"]["sink"])
        ready = problem is None and sink is not None
        condition: Obj = {"type": "Ready", "status": "True" if ready else "False",
                          "lastTransitionTime": now_iso()}
        if not ready:
            condition["reason"] = "NotReady"
            condition["message"] = problem or f"sink {obj['spec']['sink']} does not resolve"
        status: Obj = {"observedGeneration": obj["metadata"].get("generation", 1),
                       "conditions": [condition]}
        if sink is not None:
            status["sinkUri"] = sink
        self._objects.update_status(kind, key[1], key[2], status)

    def close(self) -> None:
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.stop()
        self._client.stop()
        self._loop.stop()
