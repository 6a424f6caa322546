"""Knative Serving, locally: Services become revisions, revisions become pools of processes,
and `spec.traffic` becomes the routing of each service's front.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from troupe.local.controlplane.objects import AlreadyExists, Change, NotFound, ObjectStore, now_iso
from troupe.local.controlplane.resources import REVISION, SERVICE, Kind, Obj
from troupe.local.errors import InvalidFieldError
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.serving.instance import LaunchSettings
from troupe.local.serving.pool import RevisionPool
from troupe.local.serving.revision import (
    SERVICE_LABEL,
    ConfigSource,
    Revision,
    build_revision,
    revision_object,
    same_template,
    template_of,
)
from troupe.local.serving.router import Front, Split


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


class ServingController:
    def __init__(self, objects: ObjectStore, launch: LaunchSettings, config: ConfigSource,
                 metrics: RuntimeMetrics, settings: ServingSettings) -> None:
        self._objects = objects
        self._launch = launch
        self._config = config
        self._metrics = metrics
        self._settings = settings
        self._services: dict[tuple[str, str], _ServiceState] = {}
        self._lock = threading.RLock()
        self._instance_listeners: list[Callable[[], None]] = []
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick_forever, name="autoscaler",
                                        daemon=True)
        self._ticker.start()
        objects.subscribe(self._on_change)

    # -- reconciling ----------------------------------------------------------------------
    def _on_change(self, change: Change, kind: Kind, obj: Obj) -> None:
        if kind != SERVICE:
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            if change == "DELETED":
                state = self._services.pop(key, None)
                if state is not None:
                    self._shut(state)
                self._delete_revisions(*key)
                return
            self._reconcile(obj)

    def _delete_revisions(self, namespace: str, service: str) -> None:
        """A Service's Revisions go with it, as Kubernetes' garbage collector removes
        what an owner reference ties to a deleted object."""
        for revision in self._objects.list(REVISION, namespace):
            if (revision["metadata"].get("labels") or {}).get(SERVICE_LABEL) == service:
                with contextlib.suppress(NotFound):  # deleted meanwhile
                    self._objects.delete(REVISION, namespace, revision["metadata"]["name"])

    def _reconcile(self, obj: Obj) -> None:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        state = self._services.get((namespace, name))
        if state is None:
            state = _ServiceState(namespace, name, Front(name, self._metrics))
            self._services[(namespace, name)] = state
            self._restore_revisions(state)
        problems: dict[str, tuple[str, str]] = {}
        try:
            self._ensure_revision(state, obj)
        except InvalidFieldError as error:
            problems["ConfigurationsReady"] = ("RevisionFailed", str(error))
        traffic, routing_problem = self._route(state, obj)
        if routing_problem:
            problems["RoutesReady"] = ("RevisionMissing", routing_problem)
        self._write_status(state, obj, traffic, problems)

    def _restore_revisions(self, state: _ServiceState) -> None:
        """Take back the Revisions kept from an earlier run, oldest first, so that traffic
        finds the revisions it names and new ones continue the numbering."""
        def generation(revision: Obj) -> int:
            labels = revision["metadata"].get("labels") or {}
            return int(labels.get("serving.knative.dev/configurationGeneration") or 0)

        kept = [r for r in self._objects.list(REVISION, state.namespace)
                if (r["metadata"].get("labels") or {}).get(SERVICE_LABEL) == state.name]
        for kept_revision in sorted(kept, key=generation):
            try:
                revision = build_revision(state.namespace, state.name, template_of(kept_revision),
                                          kept_revision["metadata"]["name"], self._config)
            except InvalidFieldError:
                continue  # its ConfigMap or Secret is gone: it cannot run, so it is not ready
            self._add_pool(state, revision)

    def _add_pool(self, state: _ServiceState, revision: Revision) -> None:
        state.revisions[revision.name] = RevisionPool(
            revision, self._launch, self._metrics, grace_period=self._settings.grace_period,
            buffer_size=self._settings.buffer_size,
            activation_timeout=self._settings.activation_timeout,
            on_change=self._instances_changed)
        state.latest_created = revision.name
        if self._runnable(revision):
            state.ready_revisions.add(revision.name)
            state.latest_ready = revision.name

    def _ensure_revision(self, state: _ServiceState, obj: Obj) -> None:
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
        self._add_pool(state, revision)
        kept = revision_object(revision, obj["metadata"]["generation"])
        try:
            self._objects.create(REVISION, kept)
        except AlreadyExists:  # a kept Revision that could not be restored: this replaces it
            self._objects.delete(REVISION, state.namespace, name)
            self._objects.create(REVISION, kept)
        if name not in state.ready_revisions:
            raise InvalidFieldError("spec.template.spec.containers[0].image",
                                  f"no functions/{revision.image}/main.py in the project")

    def _runnable(self, revision: Revision) -> bool:
        return (self._launch.project / "functions" / revision.image / "main.py").is_file()

    def _route(self, state: _ServiceState, obj: Obj) -> tuple[list[Obj], str | None]:
        """Point the fronts at the revisions `spec.traffic` names; keep the old routing if
        a target does not exist (as Knative does)."""
        targets = obj["spec"].get("traffic") or [{"latestRevision": True, "percent": 100}]
        resolved: list[Obj] = []
        for target in targets:
            revision = target.get("revisionName") or state.latest_ready
            if revision not in state.ready_revisions:
                return [], (f"traffic target {target} names a revision that is not ready"
                            if revision else "no revision is ready yet")
            entry: Obj = {"revisionName": revision, "percent": int(target.get("percent", 0)),
                          "latestRevision": bool(target.get("latestRevision", False))}
            if target.get("tag"):
                entry["tag"] = target["tag"]
            resolved.append(entry)
        split = Split([(state.revisions[t["revisionName"]], t["percent"]) for t in resolved])
        state.front.route(split.pick)
        tags = {t["tag"]: t["revisionName"] for t in resolved if "tag" in t}
        for tag in set(state.tag_fronts) - set(tags):
            state.tag_fronts.pop(tag).close()
        for tag, revision_name in tags.items():
            front = state.tag_fronts.get(tag) or Front(f"{state.name}/{tag}", self._metrics)
            state.tag_fronts[tag] = front
            pool = state.revisions[revision_name]
            front.route(lambda pool=pool: pool)  # type: ignore[misc]
        for entry in resolved:
            if "tag" in entry:
                entry["url"] = state.tag_fronts[entry["tag"]].url
        return resolved, None

    def _write_status(self, state: _ServiceState, obj: Obj, traffic: list[Obj],
                      problems: dict[str, tuple[str, str]]) -> None:
        previous = obj.get("status") or {}
        if not traffic and previous.get("traffic"):
            traffic = previous["traffic"]  # a failed update leaves the old routing in place
        conditions = []
        for kind in ("ConfigurationsReady", "RoutesReady", "Ready"):
            problem = problems.get(kind) or (next(iter(problems.values())) if kind == "Ready"
                                             and problems else None)
            condition: Obj = {"type": kind, "status": "False" if problem else "True",
                              "lastTransitionTime": now_iso()}
            if problem:
                condition["reason"], condition["message"] = problem
            conditions.append(condition)
        status: Obj = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "conditions": conditions,
            "url": state.front.url,
            "address": {"url": state.front.url},
            "latestCreatedRevisionName": state.latest_created,
            "latestReadyRevisionName": state.latest_ready,
            "traffic": traffic,
        }
        self._objects.update_status(SERVICE, state.namespace, state.name, status)

    # -- what the rest of the runtime asks ------------------------------------------------
    def url_of(self, namespace: str, name: str) -> str | None:
        with self._lock:
            state = self._services.get((namespace, name))
            return state.front.url if state else None

    def on_instances_changed(self, listener: Callable[[], None]) -> None:
        self._instance_listeners.append(listener)

    def _instances_changed(self) -> None:
        for listener in self._instance_listeners:
            listener()

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
            revisions: list[Obj] = [{"name": name, "ready": name in state.ready_revisions,
                                     "instances": len(pool.instances()),
                                     "start_failure": pool.start_failure}
                                    for name, pool in state.revisions.items()]
            described.append({
                "name": state.name, "namespace": state.namespace,
                "ready": all(c["status"] == "True" for c in status.get("conditions", [])),
                "url": state.front.url,
                "instances": sum(r["instances"] for r in revisions),
                "revisions": revisions,
                "traffic": status.get("traffic", []),
            })
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
        for pool in state.revisions.values():
            pool.close()

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            states, self._services = list(self._services.values()), {}
        for state in states:
            self._shut(state)
