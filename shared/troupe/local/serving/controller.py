"""Knative Serving, locally: Services become revisions, revisions become pools of processes,
and `spec.traffic` becomes the routing of each service's front.

As in Knative, a new revision starts at its initial scale (`autoscaling.knative.dev/
initial-scale`, 1 by default) and is Ready only once an instance has passed its readiness
probe; one whose instances fail to start is Ready=False with the reason and the last lines
of its log, and traffic that follows the latest revision stays on the last Ready one. With
an initial scale of 0 a revision is Ready without being probed, as Knative allows. The
Revisions kept from an earlier run passed their probe then, and are Ready again at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from troupe.local.controlplane.events import Change
from troupe.local.controlplane.kinds import CONFIGURATION, REVISION, ROUTE, SERVICE, Kind, Obj
from troupe.local.controlplane.objects import AlreadyExists, NotFound, ObjectStore
from troupe.local.delivery import DeliveryClient
from troupe.local.errors import InvalidFieldError
from troupe.local.host.loop import LoopThread
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.serving.instance import LaunchSettings
from troupe.local.serving.owned import (
    condition,
    keep_child,
    overall,
    owner_reference,
    revision_status,
    with_routing,
)
from troupe.local.serving.pool import Readiness, RevisionPool
from troupe.local.serving.revision import (
    SERVICE_LABEL,
    ConfigSource,
    Revision,
    build_revision,
    check_env_from,
    revision_object,
    same_template,
    template_of,
)
from troupe.local.serving.router import ColdStartHook, Front, Split
from troupe.local.serving.summary import revision_summary, service_summary


@dataclass(frozen=True)
class ServingSettings:
    grace_period: float = 30.0  # scale to zero after this long idle (no retention annotation)
    buffer_size: int = 1000  # requests the activator holds per revision
    activation_timeout: float = 60.0  # how long a held request may wait for an instance


@dataclass
class _ServiceState:
    namespace: str
    name: str
    front: Front
    revisions: dict[str, RevisionPool] = field(default_factory=dict)  # creation order
    ready_revisions: set[str] = field(default_factory=set)
    tag_fronts: dict[str, Front] = field(default_factory=dict)
    latest_created: str | None = None
    latest_ready: str | None = None
    routed: tuple[tuple[str, int], ...] | None = None  # what the front splits between now


class ServingController:
    def __init__(self, objects: ObjectStore, launch: LaunchSettings, config: ConfigSource,
                 metrics: RuntimeMetrics, settings: ServingSettings, *,
                 cold_starts: ColdStartHook | None = None) -> None:
        self._objects = objects
        self._cold_starts = cold_starts  # told of each request that waited for a start
        self._launch = launch
        self._config = config
        self._metrics = metrics
        self._settings = settings
        self._services: dict[tuple[str, str], _ServiceState] = {}
        self._closed_pools: list[RevisionPool] = []  # kill() reaches them while they stop
        # The fronts' calls to function instances, on a loop of their own (delivery/).
        self._loop = LoopThread("serving-fronts").start()
        self._client = DeliveryClient(self._loop)
        self._lock = threading.RLock()
        self._instance_listeners: list[Callable[[], None]] = []
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick_forever, name="autoscaler",
                                        daemon=True)
        self._ticker.start()
        objects.subscribe(self._on_change)
        # A ConfigMap or Secret that would set LD_PRELOAD through envFrom is refused with
        # the Service (422), as a name in `env` is; one changed later stops its next
        # revision instead.
        objects.add_validator(SERVICE, lambda obj: check_env_from(
            obj["spec"]["template"]["spec"]["containers"][0], obj["metadata"].get("namespace", ""),
            config))

    # -- reconciling ----------------------------------------------------------------------
    def _on_change(self, change: Change, kind: Kind, obj: Obj) -> None:
        if kind != SERVICE:
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            if change == "DELETED":
                # What it owns (Configuration, Route, through them its Revisions) goes
                # with it through the garbage collector, unless the delete orphaned it.
                state = self._services.pop(key, None)
                if state is not None:
                    self._shut(state)
                return
            if obj["metadata"].get("deletionTimestamp"):
                return  # being deleted (foreground): nothing new is made for it
            self._reconcile(obj)

    def _reconcile(self, obj: Obj) -> None:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        configuration = keep_child(self._objects, CONFIGURATION, obj,
                                   {"template": obj["spec"]["template"]})
        state = self._services.get((namespace, name))
        if state is None:
            state = _ServiceState(namespace, name, Front(name, self._metrics, self._client,
                                                         cold_starts=self._cold_starts))
            self._services[(namespace, name)] = state
            self._restore_revisions(state, configuration)
        config_problem = None
        try:
            self._ensure_revision(state, obj, configuration)
        except InvalidFieldError as error:
            config_problem = Readiness("False", "RevisionFailed", str(error))
        self._refresh_readiness(state)
        keep_child(self._objects, ROUTE, obj, {"traffic": obj["spec"].get("traffic") or []})
        traffic, routes_ready = self._route(state, obj)
        configurations_ready = config_problem or self._latest_readiness(state)
        self._write_status(state, obj, traffic, configurations_ready, routes_ready)

    def _restore_revisions(self, state: _ServiceState, configuration: Obj) -> None:
        """Take back the Revisions kept from an earlier run, oldest first, so that traffic
        finds the revisions it names and new ones continue the numbering. One kept
        without an owner (by an older runtime) is adopted by the Configuration."""
        def generation(revision: Obj) -> int:
            labels = revision["metadata"].get("labels") or {}
            return int(labels.get("serving.knative.dev/configurationGeneration") or 0)

        kept = [r for r in self._objects.list(REVISION, state.namespace)
                if (r["metadata"].get("labels") or {}).get(SERVICE_LABEL) == state.name]
        for kept_revision in sorted(kept, key=generation):
            if not kept_revision["metadata"].get("ownerReferences"):
                kept_revision["metadata"]["ownerReferences"] = [
                    owner_reference(CONFIGURATION, configuration)]
                kept_revision = self._objects.replace(REVISION, kept_revision)
            try:
                revision = build_revision(state.namespace, state.name, template_of(kept_revision),
                                          kept_revision["metadata"]["name"], self._config)
            except InvalidFieldError:
                continue  # its ConfigMap or Secret is gone: it cannot run, so it is not ready
            self._add_pool(state, revision, new=False)

    def _add_pool(self, state: _ServiceState, revision: Revision, *, new: bool) -> None:
        key = (state.namespace, state.name)
        pool = RevisionPool(
            revision, self._launch, self._metrics, grace_period=self._settings.grace_period,
            buffer_size=self._settings.buffer_size,
            activation_timeout=self._settings.activation_timeout,
            on_change=lambda: self._pool_changed(key))
        state.revisions[revision.name] = pool
        state.latest_created = revision.name
        if not self._runnable(revision):
            return
        if new and revision.initial_scale > 0:
            pool.start_initial()  # Ready once an instance passes its probe (_pool_changed)
        else:
            state.ready_revisions.add(revision.name)
            state.latest_ready = revision.name

    def _ensure_revision(self, state: _ServiceState, obj: Obj, configuration: Obj) -> None:
        template = obj["spec"]["template"]
        latest = state.revisions.get(state.latest_created or "")
        if latest is not None and same_template(latest.revision, template):
            return
        wanted = (template.get("metadata") or {}).get("name")
        name = wanted or f"{state.name}-{len(state.revisions) + 1:05d}"
        if name in state.revisions:
            raise InvalidFieldError("spec.template.metadata.name",
                                    f"revision {name!r} already exists with another template; "
                                    "give the changed template a new name")
        revision = build_revision(state.namespace, state.name, template, name, self._config)
        kept = revision_object(revision, obj["metadata"]["generation"],
                               owner_reference(CONFIGURATION, configuration))
        try:
            self._objects.create(REVISION, kept)
        except AlreadyExists:  # a kept Revision that could not be restored: this replaces it
            self._objects.delete(REVISION, state.namespace, name)
            self._objects.create(REVISION, kept)
        self._add_pool(state, revision, new=True)
        if not self._runnable(revision):
            raise InvalidFieldError("spec.template.spec.containers[0].image",
                                    f"no functions/{revision.image}/main.py in the project")

    def _runnable(self, revision: Revision) -> bool:
        return (self._launch.project / "functions" / revision.image / "main.py").is_file()

    def _pool_changed(self, key: tuple[str, str]) -> None:
        """An instance started, failed or stopped: readiness, routing and status follow."""
        for listener in self._instance_listeners:
            listener()
        with self._lock:
            if key not in self._services or self._stopping.is_set():
                return
            try:
                obj = self._objects.get(SERVICE, *key)
            except NotFound:
                return
            self._reconcile(obj)

    def _refresh_readiness(self, state: _ServiceState) -> None:
        for name, pool in state.revisions.items():  # oldest first: the last ready wins
            if name not in state.ready_revisions and pool.ever_ready:
                state.ready_revisions.add(name)
            if name in state.ready_revisions:
                state.latest_ready = name

    def _readiness(self, state: _ServiceState, name: str) -> Readiness:
        if name in state.ready_revisions:
            return Readiness("True")
        pool = state.revisions.get(name)
        return pool.readiness() if pool else Readiness("False", "RevisionMissing",
                                                       f'Revision "{name}" does not exist.')

    def _latest_readiness(self, state: _ServiceState) -> Readiness:
        latest = self._readiness(state, state.latest_created or "")
        if latest.status == "False":
            return Readiness("False", "RevisionFailed", f'Revision "{state.latest_created}" '
                             f"failed with message: {latest.message}")
        return latest

    def _route(self, state: _ServiceState, obj: Obj) -> tuple[list[Obj], Readiness]:
        """Point the fronts at the revisions `spec.traffic` names; keep the old routing if
        a target is not ready (as Knative does)."""
        targets = obj["spec"].get("traffic") or [{"latestRevision": True, "percent": 100}]
        resolved: list[Obj] = []
        for target in targets:
            revision = target.get("revisionName") or state.latest_ready
            if revision not in state.ready_revisions:
                self._hold_for_first(state)
                readiness = (self._readiness(state, revision) if revision else
                             Readiness("Unknown", "RevisionMissing", "no revision is ready yet"))
                return [], Readiness(readiness.status if readiness.status != "True"
                                     else "Unknown", readiness.reason or "RevisionMissing",
                                     f"traffic target {target}: {readiness.message}")
            entry: Obj = {"revisionName": revision, "percent": int(target.get("percent", 0)),
                          "latestRevision": bool(target.get("latestRevision", False))}
            if target.get("tag"):
                entry["tag"] = target["tag"]
            resolved.append(entry)
        routed = tuple((t["revisionName"], t["percent"]) for t in resolved)
        if routed != state.routed:  # a new split only when it changed: it keeps its rhythm
            state.front.route(Split([(state.revisions[name], percent)
                                     for name, percent in routed]).pick)
            state.routed = routed
        self._route_tags(state, resolved)
        return resolved, Readiness("True")

    def _hold_for_first(self, state: _ServiceState) -> None:
        """Before any revision was ever ready, requests wait in the activator of the one
        starting, instead of being refused, as they would wait for a cold start."""
        pool = state.revisions.get(state.latest_created or "")
        if state.routed is None and pool is not None and self._runnable(pool.revision):
            state.front.route(lambda: pool)

    def _route_tags(self, state: _ServiceState, resolved: list[Obj]) -> None:
        tags = {t["tag"]: t["revisionName"] for t in resolved if "tag" in t}
        for tag in set(state.tag_fronts) - set(tags):
            state.tag_fronts.pop(tag).close()
        for tag, revision_name in tags.items():
            front = state.tag_fronts.get(tag) or Front(f"{state.name}/{tag}", self._metrics,
                                                        self._client,
                                                        cold_starts=self._cold_starts)
            state.tag_fronts[tag] = front
            pool = state.revisions[revision_name]
            front.route(lambda pool=pool: pool)  # type: ignore[misc]
        for entry in resolved:
            if "tag" in entry:
                entry["url"] = state.tag_fronts[entry["tag"]].url

    def _write_status(self, state: _ServiceState, obj: Obj, traffic: list[Obj],
                      configurations_ready: Readiness, routes_ready: Readiness) -> None:
        previous = obj.get("status") or {}
        if not traffic and previous.get("traffic"):
            traffic = previous["traffic"]  # a failed update leaves the old routing in place
        earlier = previous.get("conditions") or []
        ready = overall([configurations_ready, routes_ready])
        generation = obj["metadata"].get("generation", 1)
        url = state.front.url
        status: Obj = {
            "observedGeneration": generation,
            "conditions": [condition("ConfigurationsReady", configurations_ready, earlier),
                           condition("RoutesReady", routes_ready, earlier),
                           condition("Ready", ready, earlier)],
            "url": url, "address": {"url": url},
            "latestCreatedRevisionName": state.latest_created,
            "latestReadyRevisionName": state.latest_ready,
            "traffic": traffic,
        }
        # What the Service owns first: whoever sees the Service Ready finds them Ready too.
        self._write_owned_status(state, generation, traffic, configurations_ready, routes_ready)
        self._objects.update_status(SERVICE, state.namespace, state.name, status)

    def _write_owned_status(self, state: _ServiceState, generation: int, traffic: list[Obj],
                            configurations_ready: Readiness, routes_ready: Readiness) -> None:
        namespace, name = state.namespace, state.name
        for kind, fields, readiness in (
                (CONFIGURATION, {"latestCreatedRevisionName": state.latest_created,
                                 "latestReadyRevisionName": state.latest_ready},
                 configurations_ready),
                (ROUTE, {"url": state.front.url, "address": {"url": state.front.url},
                         "traffic": traffic}, routes_ready)):
            with contextlib.suppress(NotFound):
                earlier = (self._objects.get(kind, namespace, name).get("status") or {})
                self._objects.update_status(kind, namespace, name, {
                    "observedGeneration": generation, **fields,
                    "conditions": [condition("Ready", readiness,
                                             earlier.get("conditions") or [])]})
        for revision_name, pool in state.revisions.items():
            try:
                revision = self._objects.get(REVISION, namespace, revision_name)
            except NotFound:
                continue
            routed = with_routing(revision, traffic)
            if routed["metadata"] != revision["metadata"]:
                revision = self._objects.replace(REVISION, routed)
            self._objects.update_status(REVISION, namespace, revision_name, revision_status(
                self._readiness(state, revision_name), pool.replicas(),
                revision.get("status") or {}))

    # -- what the rest of the runtime asks ------------------------------------------------
    def url_of(self, namespace: str, name: str) -> str | None:
        with self._lock:
            state = self._services.get((namespace, name))
            return state.front.url if state else None

    def on_instances_changed(self, listener: Callable[[], None]) -> None:
        self._instance_listeners.append(listener)

    def instance_targets(self) -> list[tuple[str, str, str]]:
        """(address, service, revision) of every running instance, for Prometheus."""
        with self._lock:
            pools = [p for s in self._services.values() for p in s.revisions.values()]
        return [(i.address, p.revision.service, p.revision.name)
                for p in pools for i in p.instances()]

    def describe(self) -> list[Obj]:
        """The `troupe status` view of every service."""
        with self._lock:
            states = list(self._services.values())
        described = []
        for state in states:
            obj = self._objects.get(SERVICE, state.namespace, state.name)
            status = obj.get("status") or {}
            revisions = [revision_summary(name, pool, self._readiness(state, name))
                         for name, pool in state.revisions.items()]
            described.append(service_summary(state.name, state.namespace, status,
                                             state.front.url, revisions))
        return described

    # -- lifecycle -------------------------------------------------------------------------
    def _tick_forever(self) -> None:
        while not self._stopping.wait(0.1):
            with self._lock:
                pools = [p for s in self._services.values() for p in s.revisions.values()]
            for pool in pools:
                pool.tick()

    def _shut(self, state: _ServiceState) -> None:
        state.front.close()
        for front in state.tag_fronts.values():
            front.close()
        with self._lock:
            self._closed_pools = [*(p for p in self._closed_pools if p.has_processes()),
                                  *state.revisions.values()]
        for pool in state.revisions.values():
            pool.close()

    def kill(self) -> None:
        """SIGKILL every function process, stopping or not: for a stop out of time."""
        with self._lock:
            pools = [*self._closed_pools, *(pool for state in self._services.values()
                                             for pool in state.revisions.values())]
        for pool in pools:
            pool.kill()

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            states, self._services = list(self._services.values()), {}
        for state in states:
            self._shut(state)
        self._client.stop()
        self._loop.stop()

