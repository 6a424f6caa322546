"""`troupe up` as a library: load the manifests, start every part, and tie them together.

Everything the manifests declare goes through the control plane's object store, exactly
as a `kubectl apply` would; the serving, eventing and sources controllers then follow
the store, so a change made later through the API takes effect the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .apiserver import ApiServer
from .controllers import SourcesController
from .manifests import ManifestError, Project, load_project
from .metrics import RuntimeMetrics
from .objects import ObjectStore
from .observability import Observability
from .resources import (
    BROKER,
    DEFAULT_NAMESPACE,
    KAFKASOURCE,
    PINGSOURCE,
    SERVICE,
    TRIGGER,
    InvalidResource,
    Obj,
)
from .serving.controller import ServingController, ServingSettings
from .serving.instance import LaunchSettings
from .serving.revision import ConfigSource

# Apply order, so that references (a Trigger's subscriber, a source's sink) resolve at once.
_APPLY_ORDER = (BROKER, SERVICE, TRIGGER, PINGSOURCE, KAFKASOURCE)
KUBE_CONTEXT = "troupe-local"


@dataclass(frozen=True)
class RuntimeOptions:
    project: Path
    port: int = 0  # the broker ingress; 0 picks a free port
    api_port: int = 0
    namespace: str = DEFAULT_NAMESPACE
    serving: ServingSettings = field(default_factory=ServingSettings)
    data_plane: bool = True  # Kafka + broker; off for serving-only runs
    prometheus: bool = True
    store_url: str | None = None  # default: file://<project>/.troupe/store

    @property
    def workdir(self) -> Path:
        return self.project / ".troupe"


class Runtime:
    def __init__(self, options: RuntimeOptions, say: Callable[[str], None] = print) -> None:
        self.options = options
        self._say = say
        self.metrics = RuntimeMetrics()
        self.objects = ObjectStore()
        self._parts: list[Callable[[], None]] = []  # stop functions, in start order
        self.serving: ServingController | None = None
        self.api: ApiServer | None = None
        self.observability: Observability | None = None
        self.eventing: Any = None  # the data plane adapter, when it runs
        self.kubeconfig = options.workdir / "kubeconfig"
        self.store_url = ""

    # -- start / stop --------------------------------------------------------------------
    def start(self) -> None:
        options = self.options
        project = load_project(options.project, options.namespace)  # fail before starting
        options.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_parts(project)
        except BaseException:
            self.stop()
            raise

    def _start_parts(self, project: Project) -> None:
        options = self.options
        bootstrap = self._start_data_plane()
        self.api = ApiServer(self.objects, self.metrics.exposition, port=options.api_port,
                             status=self.status)
        self._parts.append(self.api.close)
        self._write_kubeconfig(self.api.url)
        self.store_url = options.store_url or (options.workdir / "store").resolve().as_uri()
        extra_env = {"TROUPE_STORE_URL": self.store_url, "KUBECONFIG": str(self.kubeconfig)}
        self.observability = Observability(options.workdir / "prometheus",
                                           self.api.url.removeprefix("http://"),
                                           self._instance_targets, self._say)
        if options.prometheus:
            self.observability.start()
        self._parts.append(self.observability.stop)
        # Always set, empty without Prometheus: the manifests' value names the cluster's
        # Prometheus, which does not exist here, and an empty URL makes the monitor say
        # that monitoring is unavailable instead of retrying a host that never answers.
        extra_env["TROUPE_PROMETHEUS_URL"] = self.observability.url or ""
        launch = LaunchSettings(project=options.project.resolve(),
                                log_dir=options.workdir / "logs", extra_env=extra_env)
        self.serving = ServingController(self.objects, launch,
                                         ConfigSource(project.config_maps, project.secrets),
                                         self.metrics, options.serving)
        self._parts.append(self.serving.close)
        self.serving.on_instances_changed(self.observability.refresh)
        sources = SourcesController(self.objects, self.resolve_destination, bootstrap)
        self._parts.append(sources.close)
        self._apply(project)
        if self.eventing is not None and not self.eventing.wait_ready(60):
            self._say("some triggers have not joined their consumer groups yet; "
                      "`troupe status` shows which")

    def _start_data_plane(self) -> str | None:
        if not self.options.data_plane:
            return None
        from .eventing import Eventing  # imports kafka-python; serving-only runs skip it

        self.eventing = Eventing(self.objects, self.options.workdir, self.options.port,
                                 self.options.namespace, self.resolve_destination)
        self._parts.append(self.eventing.stop)
        bootstrap: str = self.eventing.start()
        self.metrics.read_events_from(self.eventing.event_counts)
        return bootstrap

    def _apply(self, project: Project) -> None:
        for kind in _APPLY_ORDER:
            for manifest in (m for m in project.resources if m.kind == kind):
                resource = f"{kind.kind}/{manifest.obj['metadata']['name']}"
                try:
                    self.objects.create(kind, manifest.obj)
                except InvalidResource as error:
                    raise ManifestError(manifest.file, resource, error.field,
                                        error.problem) from None
                if kind == SERVICE:
                    self._check_service(manifest.file, resource, manifest.obj)

    def _check_service(self, file: Path, resource: str, obj: Obj) -> None:
        metadata = obj["metadata"]
        status = self.objects.get(SERVICE, metadata["namespace"], metadata["name"])["status"]
        for condition in status.get("conditions", []):
            if condition["type"] == "ConfigurationsReady" and condition["status"] != "True":
                field_name, _, problem = condition.get("message", "").partition(": ")
                raise ManifestError(file, resource, field_name, problem)

    def stop(self) -> None:
        parts, self._parts = self._parts, []
        for stop in reversed(parts):
            try:
                stop()
            except Exception as error:  # keep stopping the rest; say what went wrong
                self._say(f"while stopping: {error}")

    def __enter__(self) -> Runtime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the parts ask each other -------------------------------------------------------
    def resolve_destination(self, namespace: str, destination: Obj) -> str | None:
        """A Knative Destination as a local URL: a ref to a Service or Broker, plus `uri`."""
        ref, uri = destination.get("ref"), destination.get("uri")
        if ref is None:
            return str(uri) if uri else None
        ref_namespace = ref.get("namespace") or namespace
        base: str | None = None
        if ref.get("kind") == "Service" and self.serving is not None:
            base = self.serving.url_of(ref_namespace, ref["name"])
        elif ref.get("kind") == "Broker":
            base = self.broker_url(ref_namespace, ref["name"])
        if base is None:
            return None
        return base.rstrip("/") + "/" + str(uri).lstrip("/") if uri else base

    def broker_url(self, namespace: str, name: str) -> str | None:
        if self.eventing is None:
            return None
        url: str | None = self.eventing.broker_url(namespace, name)
        return url

    def data_plane_info(self) -> dict[str, Any]:
        """Where the event log is, for commands that read Kafka directly."""
        return self.eventing.info() if self.eventing is not None else {}

    def _instance_targets(self) -> list[tuple[str, str, str]]:
        return self.serving.instance_targets() if self.serving else []

    @property
    def api_url(self) -> str:
        assert self.api is not None, "start() first"
        return self.api.url

    def broker_urls(self) -> list[str]:
        urls = []
        for broker in self.objects.list(BROKER):
            url = self.broker_url(broker["metadata"]["namespace"], broker["metadata"]["name"])
            if url:
                urls.append(url)
        return urls

    def status(self) -> Obj:
        triggers = []
        for trigger in self.objects.list(TRIGGER):
            conditions = (trigger.get("status") or {}).get("conditions", [])
            triggers.append({
                "name": trigger["metadata"]["name"],
                "namespace": trigger["metadata"]["namespace"],
                "broker": trigger["spec"]["broker"],
                "ready": any(c["type"] == "Ready" and c["status"] == "True" for c in conditions),
                "subscriber": (trigger.get("status") or {}).get("subscriberUri"),
                **(self.eventing.trigger_stats(trigger) if self.eventing else {}),
            })
        return {
            "api": self.api.url if self.api else None,
            "kubeconfig": str(self.kubeconfig),
            "brokers": self.broker_urls(),
            "prometheus": self.observability.url if self.observability else None,
            "services": self.serving.describe() if self.serving else [],
            "triggers": triggers,
        }

    def _write_kubeconfig(self, server: str) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": KUBE_CONTEXT, "cluster": {"server": server}}],
            "users": [{"name": KUBE_CONTEXT, "user": {"token": "troupe-local"}}],
            "contexts": [{"name": KUBE_CONTEXT, "context": {
                "cluster": KUBE_CONTEXT, "user": KUBE_CONTEXT,
                "namespace": self.options.namespace}}],
            "current-context": KUBE_CONTEXT,
        }
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.kubeconfig.with_suffix(".tmp")
        temporary.write_text(yaml.safe_dump(config, sort_keys=False))
        os.replace(temporary, self.kubeconfig)
