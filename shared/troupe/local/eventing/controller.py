"""The data plane inside `troupe up`: Kafka (Tansu, or KAFKA_BOOTSTRAP_SERVERS), the Broker
ingress and one dispatcher per Trigger, following Brokers and Triggers in the object store.

What survives what: with the embedded Kafka (Tansu, in memory), events the ingress
acknowledged and no Trigger has delivered yet are lost when Tansu stops or dies; it is
restarted on its own port within a second, its topics are created again and the Triggers
start over on them. With KAFKA_BOOTSTRAP_SERVERS pointing at a durable Kafka, nothing
acknowledged is lost when the runtime is killed: the Triggers resume from their committed
offsets. Stopping stops the data plane first and Kafka last.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from troupe.local.controlplane.events import Change
from troupe.local.controlplane.kinds import BROKER, TRIGGER, Kind, Obj
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.eventing.broker import DataPlane
from troupe.local.host.kafka import (
    KafkaUnavailableError,
    TansuBroker,
    TansuSupervisor,
    bootstrap_servers_from_env,
)

# (namespace, destination) -> URL or None; the runtime's resolver for refs.
ResolveDestination = Callable[[str, Obj], str | None]


class Eventing:
    def __init__(self, objects: ObjectStore, workdir: Path, port: int, namespace: str,
                 resolve: ResolveDestination) -> None:
        self._objects = objects
        self._workdir = workdir
        self._port = port
        self._namespace = namespace
        self._resolve = resolve
        self._kafka: TansuBroker | None = None
        self._supervisor: TansuSupervisor | None = None
        self.plane: DataPlane | None = None
        self._stopping = threading.Event()
        self._status_thread = threading.Thread(target=self._report_status_forever,
                                               name="eventing-status", daemon=True)

    def start(self) -> str:
        """Start Kafka (unless one is configured) and the data plane; return bootstrap servers."""
        bootstrap = bootstrap_servers_from_env()
        if bootstrap is None:
            self._kafka = TansuBroker(self._workdir / "kafka").start()
            bootstrap = self._kafka.bootstrap_servers

        plane = DataPlane(bootstrap, port=self._port, resolve_subscriber=self._resolve_ref,
                          default_namespace=self._namespace)
        try:
            self.plane = plane.start()
        except KafkaError as error:
            plane.stop()
            where = ("KAFKA_BOOTSTRAP_SERVERS" if self._kafka is None
                     else f"the embedded Kafka (log: {self._kafka.log_path})")
            raise KafkaUnavailableError(
                f"Kafka at {bootstrap} did not answer ({error}): check {where}, or unset "
                "KAFKA_BOOTSTRAP_SERVERS to use the embedded one") from None
        if self._kafka is not None:
            # Told of a death at once; the data plane puts the topics back once the
            # restarted Tansu answers (kafka_watch.py).
            self._supervisor = TansuSupervisor(self._kafka, plane.kafka_lost).start()
        self._objects.subscribe(self._on_change)
        self._status_thread.start()
        return bootstrap

    def _resolve_ref(self, namespace: str, ref: Mapping[str, Any]) -> str:
        url = self._resolve(namespace, {"ref": dict(ref)})
        if url is None:
            raise LookupError(f"{ref.get('kind')}/{ref.get('name')} does not exist in {namespace}")
        return url

    def _on_change(self, change: Change, kind: Kind, obj: Obj) -> None:
        plane = self.plane
        if plane is None or kind not in (BROKER, TRIGGER):
            return
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if kind == BROKER:
            if change == "DELETED":
                plane.remove_broker(namespace, name)
            else:
                plane.add_broker(obj)
        elif change == "DELETED":
            plane.remove_trigger(namespace, name)
        else:
            plane.add_trigger(obj)
        if change != "DELETED":
            self._report_status()

    def wait_ready(self, timeout: float) -> bool:
        if self.plane is None:
            return True
        ready = self.plane.wait_ready(timeout)
        # Now, not at the next periodic report: whoever was told the Triggers are ready
        # may read their status at once (`troupe up --detach`, then `troupe status`).
        self._report_status()
        return ready

    # -- what the runtime reads -----------------------------------------------------------
    def broker_url(self, namespace: str, name: str) -> str | None:
        if self.plane is None or not any(b.key == (namespace, name) for b in self.plane.brokers()):
            return None
        return self.plane.broker_url(namespace, name)

    def trigger_stats(self, trigger: Obj) -> dict[str, Any]:
        if self.plane is None:
            return {}
        try:
            status = self.plane.trigger_status(trigger["metadata"]["namespace"],
                                               trigger["metadata"]["name"])
        except KeyError:
            return {}
        return {"lag": status.lag, "delivered": status.delivered, "retries": status.retries,
                "dead_lettered": status.dead_lettered, "filter_errors": status.filter_errors,
                "unreadable": status.unreadable, "dropped": status.dropped,
                "failures": status.failures, "reason": status.reason}

    def event_counts(self) -> dict[str, float]:
        counts = {"ingested": 0.0, "delivered": 0.0, "retried": 0.0, "dead_lettered": 0.0,
                  "filter_errors": 0.0}
        if self.plane is None:
            return counts
        status = self.plane.status()
        counts["ingested"] = float(sum(broker["ingested"] for broker in status["brokers"]))
        for trigger in status["triggers"]:
            counts["delivered"] += trigger["delivered"]
            counts["retried"] += trigger["retries"]
            counts["dead_lettered"] += trigger["dead_lettered"]
            counts["filter_errors"] += trigger["filter_errors"]
        return counts

    def info(self) -> dict[str, Any]:
        if self.plane is None:
            return {}
        brokers = self.plane.brokers()
        return {"bootstrap_servers": self.plane.bootstrap_servers,
                "topic": brokers[0].topic if brokers else None, "kafka_pid": self.kafka_pid}

    # -- status ------------------------------------------------------------------------------
    def _report_status_forever(self) -> None:
        while not self._stopping.wait(0.5):
            self._report_status()

    def _report_status(self) -> None:
        plane = self.plane
        if plane is None:
            return
        problem = plane.kafka_problem
        for broker in plane.brokers():
            address = {"url": plane.broker_url(*broker.key)}
            self._objects.update_status(BROKER, broker.namespace, broker.name, {
                "conditions": [_condition(problem is None, problem or "")],
                "address": address})
        for trigger in plane.triggers():
            try:
                state = plane.trigger_status(trigger.namespace, trigger.name)
            except KeyError:
                continue  # removed meanwhile
            status: Obj = {"conditions": [_condition(state.ready, state.reason)]}
            subscriber = trigger.subscriber
            destination = {"ref": dict(subscriber.ref or {}), "uri": subscriber.uri}
            url = (self._resolve(trigger.namespace, destination) if subscriber.ref
                   else subscriber.uri)
            if url:
                status["subscriberUri"] = url
            self._objects.update_status(TRIGGER, trigger.namespace, trigger.name, status)

    def kafka_status(self) -> str:
        """What `troupe status` says about Kafka."""
        plane = self.plane
        if plane is None:
            return "not running"
        where = "embedded" if self._kafka is not None else "KAFKA_BOOTSTRAP_SERVERS"
        restarts = self._supervisor.restarts if self._supervisor is not None else 0
        state = plane.kafka_problem or "up"
        return f"{plane.bootstrap_servers} ({where}): {state}" + (
            f", restarted {restarts} times" if restarts else "")

    @property
    def kafka_pid(self) -> int | None:
        """The embedded Kafka's process, for `troupe down` to kill if all else fails."""
        return self._kafka.pid if self._kafka is not None else None

    def kill(self) -> None:
        """SIGKILL the embedded Kafka: for a stop that ran out of time."""
        if self._supervisor is not None:
            self._supervisor.stop()
        if self._kafka is not None:
            self._kafka.kill()

    def stop(self) -> None:
        """The data plane first, then Kafka: nothing is written to a Kafka that is gone."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.stop()
        if self.plane is not None:
            self.plane.stop()
        if self._kafka is not None:
            self._kafka.stop()


def _condition(ready: bool, reason: str) -> Obj:
    # No lastTransitionTime: this is rewritten twice a second and must not churn
    # resourceVersion when nothing changed.
    condition: Obj = {"type": "Ready", "status": "True" if ready else "False"}
    if not ready:
        condition["reason"], condition["message"] = "NotReady", reason
    return condition
