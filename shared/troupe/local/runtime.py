"""`troupe up` as a library: load the manifests, start every part, and tie them together.

The objects kept from the last run come back first (saved_objects.py), then everything the
manifests declare is applied on top of them, as a `kubectl apply` would (apply.py). The
serving, eventing and sources controllers follow the object store, so a change made later
through the API takes effect the same way, and every change is written back to disk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from troupe.local.controlplane.access import access_checks
from troupe.local.controlplane.admission import admit
from troupe.local.controlplane.apiserver import ApiServer
from troupe.local.controlplane.collector import GarbageCollector
from troupe.local.controlplane.kinds import (
    BROKER,
    STORED_KINDS,
    TRIGGER,
    Obj,
)
from troupe.local.controlplane.kubeconfig import new_token, write_kubeconfig
from troupe.local.controlplane.manifests import Project, load_project
from troupe.local.controlplane.objects import ObjectStore
from troupe.local.controlplane.saved_objects import (
    STATE_FILE_NAME,
    SavedObjects,
    SavedObjectsWriter,
    SavedStateError,
    read_saved_objects,
)
from troupe.local.conventions import DEFAULT_NAMESPACE
from troupe.local.dashboard.collector import collector_routes
from troupe.local.dashboard.dashboard import Dashboard, DashboardSources
from troupe.local.dashboard.server import DashboardServer
from troupe.local.errors import InvalidResourceError
from troupe.local.eventing.checks import add_eventing_checks
from troupe.local.eventing.sink_policy import add_sink_checks
from troupe.local.eventing.sources.controller import SourcesController
from troupe.local.host.private_files import write_owner_only
from troupe.local.observability.cold_starts import ColdStartSpans
from troupe.local.observability.runtime_metrics import RuntimeMetrics
from troupe.local.observability.scraping import Observability
from troupe.local.observability.span_recorder import SpanRecorder
from troupe.local.observability.span_store import SpanStore
from troupe.local.project_apply import RESTORE_ORDER, ProjectApplier
from troupe.local.serving import prewarm
from troupe.local.serving.controller import ServingController, ServingSettings
from troupe.local.serving.instance import LaunchSettings
from troupe.local.serving.revision import config_in_store
from troupe.traces import TRACE_FILE

if TYPE_CHECKING:  # imported when the data plane starts: it pulls in kafka-python
    from troupe.local.eventing.controller import Eventing

# `troupe down` and Ctrl-C finish within 15 s: the runtime stops what it can in this long,
# then kills the rest.
STOP_BUDGET_S: Final = 10.0


@dataclass(frozen=True)
class RuntimeOptions:
    project: Path
    port: int = 0  # the broker ingress; 0 picks a free port
    api_port: int = 0
    dashboard_port: int = 0  # the dashboard and the functions' OTLP receiver
    namespace: str = DEFAULT_NAMESPACE
    serving: ServingSettings = field(default_factory=ServingSettings)
    data_plane: bool = True  # Kafka + broker; off for serving-only runs
    prometheus: bool = True
    store_url: str | None = None  # default: file://<project>/.troupe/store
    # Sinks off this machine (`troupe up --allow-external-sinks`); see sink_policy.py.
    allow_external_sinks: bool = False
    prewarm: bool = True  # fork instances from a template that imported their libraries

    @property
    def workdir(self) -> Path:
        return self.project / ".troupe"

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE_NAME

    @property
    def default_store(self) -> Path:
        return self.workdir / "store"

    def kept_state(self) -> list[Path]:
        """What a run leaves for the next one, and `--fresh` removes: the API's objects,
        the store (when it is the default one here), Prometheus' data, the logs and the spans."""
        kept = [self.state_file, self.workdir / "prometheus", self.workdir / "logs",
                self.workdir / TRACE_FILE.parent]
        if self.store_url is None:
            kept.insert(1, self.default_store)
        return [path for path in kept if path.exists()]


def exporter_environment(endpoint: str, token: str) -> dict[str, str]:
    """OpenTelemetry's variables for a function that `troupe up` runs: its spans go to the
    runtime's receiver with the token, and are sent a few times a second rather than every
    5 s, so that a run shows on the dashboard while it happens."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_HEADERS": f"authorization={quote('Bearer ' + token)}",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
            "OTEL_BSP_SCHEDULE_DELAY": "200"}


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
        self.eventing: Eventing | None = None  # the data plane, when it runs
        self.spans = SpanStore(options.workdir / TRACE_FILE)
        # The runtime's own spans: the data plane's, and the activator's cold starts.
        self._recorders: dict[str, SpanRecorder] = {}
        self.dashboard: DashboardServer | None = None
        self.template: prewarm.InstanceTemplate | None = None  # with prewarmed instances
        # What every function instance gets from the runtime, over its revision's own env.
        self.function_environment: dict[str, str] = {}
        self.kubeconfig = options.workdir / "kubeconfig"
        # The API's bearer token, new for each run: in the kubeconfig, and nowhere else
        # but the owner-only record of the running runtime and Prometheus' token file.
        self.api_token = new_token()
        self.api_ca_file = options.workdir / "api-ca.crt"  # what plain HTTPS clients trust
        self.store_url = ""

    # -- start / stop --------------------------------------------------------------------
    def start(self) -> None:
        options = self.options
        # Both fail before anything starts, so a bad manifest or state file changes nothing.
        project = load_project(options.project, options.namespace)
        saved = read_saved_objects(options.state_file, STORED_KINDS)
        options.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_parts(project, saved)
        except BaseException:
            self.stop()
            raise

    def _start_parts(self, project: Project, saved: SavedObjects | None) -> None:
        options = self.options
        self.spans.open()
        self._parts.append(self.spans.close)
        add_eventing_checks(self.objects, options.namespace)
        add_sink_checks(self.objects, options.allow_external_sinks)
        bootstrap = self._start_data_plane()
        self.api = ApiServer(self.objects, self.metrics.exposition, port=options.api_port,
                             runtime_status=self.status, admit=admit,
                             checks=access_checks(self.api_token))
        self._parts.append(self.api.close)
        write_kubeconfig(self.kubeconfig, self.api.url, self.api_token, options.namespace,
                         self.api.certificate.ca_pem)
        write_owner_only(self.api_ca_file, self.api.certificate.ca_pem)
        self.store_url = options.store_url or options.default_store.resolve().as_uri()
        extra_env = {"TROUPE_STORE_URL": self.store_url, "KUBECONFIG": str(self.kubeconfig)}
        # The dashboard opens with the API's token, and the functions' spans come with it.
        self.dashboard = DashboardServer(self.api_token, collector_routes(self.spans),
                                         port=options.dashboard_port)
        self._parts.append(self.dashboard.close)
        # The functions export their spans here, as they would to a cluster's collector.
        extra_env.update(exporter_environment(self.dashboard.url, self.dashboard.access.token))
        self.observability = Observability(options.workdir / "prometheus",
                                           self.api.url.removeprefix("https://"),
                                           self.api_token, self.api_ca_file,
                                           self._instance_targets, self._say)
        if options.prometheus:
            self.observability.start()
        self._parts.append(self.observability.stop)
        # Always set, empty without Prometheus: the manifests' value names the cluster's
        # Prometheus, which does not exist here, and an empty URL makes the monitor say
        # that monitoring is unavailable instead of retrying a host that never answers.
        extra_env["TROUPE_PROMETHEUS_URL"] = self.observability.url or ""
        self.function_environment = extra_env
        # Once every instance's shared variables are known: the template loads with them.
        self._start_template({**os.environ, **extra_env})
        launch = LaunchSettings(project=options.project.resolve(),
                                log_dir=options.workdir / "logs", extra_env=extra_env,
                                template=self.template)
        self.serving = ServingController(
            self.objects, launch, config_in_store(self.objects), self.metrics, options.serving,
            cold_starts=ColdStartSpans(self._recorder("troupe-activator")).waited)
        self._parts.append(self.serving.close)
        GarbageCollector(self.objects)
        self.serving.on_instances_changed(self.observability.refresh)
        sources = SourcesController(self.objects, self.resolve_destination, bootstrap)
        self._parts.append(sources.close)
        if saved is not None:
            try:
                self.objects.restore(saved.resource_version, saved.objects, RESTORE_ORDER)
            except InvalidResourceError as error:  # allowed by an earlier run, not by this one
                raise SavedStateError(options.state_file, str(error)) from None
        applier = ProjectApplier(self.objects, options.project, self._say)
        applier.ensure_namespaces({options.namespace, "default", *(
            m.obj["metadata"]["namespace"] for m in project.resources if m.kind.namespaced)})
        applier.ensure_run_secrets({options.namespace, *(
            m.obj["metadata"]["namespace"] for m in project.resources if m.kind.namespaced)})
        applier.apply(project)
        writer = SavedObjectsWriter(options.state_file)
        self.objects.subscribe(lambda *_: writer.write(*self.objects.snapshot()))
        writer.write(*self.objects.snapshot())
        if self.eventing is not None and not self.eventing.wait_ready(60):
            self._say("some triggers have not joined their consumer groups yet; "
                      "`troupe status` shows which")
        if self.template is not None and not self.template.wait_ready(120):
            problem = self.template.describe()["problem"] or "still preloading after 120 s"
            self._say(f"instances start as fresh processes: the template is not ready "
                      f"({problem})")
        self._start_dashboard(extra_env)

    def _start_template(self, env: dict[str, str]) -> None:
        if not self.options.prewarm:
            return
        unsupported = prewarm.supported()
        if unsupported:
            self._say(f"{unsupported}: instances start as fresh processes")
            return
        self.template = prewarm.InstanceTemplate(
            prewarm.modules_to_preload(self.options.project),
            self.options.workdir / "logs" / "template.log", env)
        self.template.start()
        self._parts.append(self.template.stop)  # after the instances: parts stop in reverse

    def _start_dashboard(self, function_environment: dict[str, str]) -> None:
        assert self.dashboard is not None
        info = self.data_plane_info()
        event_log = (info["bootstrap_servers"], info["topic"]) if info.get("topic") else None
        views = Dashboard(self.dashboard, DashboardSources(
            objects=self.objects, spans=self.spans,
            functions=self.options.project.resolve() / "functions",
            function_environment=function_environment, store_url=self.store_url,
            prometheus_url=lambda: self.observability.url if self.observability else None,
            broker_url=lambda: next(iter(self.broker_urls()), None), event_log=event_log))
        self._parts.append(views.stop)
        views.start()

    def _recorder(self, service: str) -> SpanRecorder:
        """The span recorder of one of the runtime's parts, named as its spans' service."""
        recorder = self._recorders.get(service)
        if recorder is None:
            recorder = self._recorders[service] = SpanRecorder(self.spans, service).start()
            self._parts.append(recorder.close)
        return recorder

    @property
    def dashboard_url(self) -> str:
        """The link that opens the dashboard: it carries the token."""
        assert self.dashboard is not None, "start() first"
        return self.dashboard.login_url

    def _start_data_plane(self) -> str | None:
        if not self.options.data_plane:
            return None
        from troupe.local.eventing.controller import (
            Eventing,  # imports kafka-python; serving-only runs skip it
        )

        self.eventing = Eventing(self.objects, self.options.workdir, self.options.port,
                                 self.options.namespace, self.resolve_destination,
                                 spans=self._recorder("troupe-broker"))
        self._parts.append(self.eventing.stop)
        bootstrap: str = self.eventing.start()
        self.metrics.read_events_from(self.eventing.event_counts)
        return bootstrap

    def shutdown(self, budget_s: float = STOP_BUDGET_S) -> bool:
        """`stop()`, given at most `budget_s` seconds: what has not stopped by then (a Kafka
        that does not answer, a function that ignores its signal, a sink that hangs) is
        killed with SIGKILL. False if anything had to be killed."""
        stopping = threading.Thread(target=self.stop, name="runtime-stop", daemon=True)
        stopping.start()
        stopping.join(budget_s)
        if not stopping.is_alive():
            return True
        self._say(f"the runtime did not stop within {budget_s:.0f} s: killing what is left")
        self.kill()
        return False

    def kill(self) -> None:
        """SIGKILL every child process now (functions, their template, Prometheus, the
        embedded Kafka)."""
        for part in (self.serving, self.template, self.observability, self.eventing):
            if part is not None:
                try:
                    part.kill()
                except Exception as error:  # keep killing the rest
                    self._say(f"while killing: {error}")

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

    @property
    def api_headers(self) -> dict[str, str]:
        """What a plain HTTP client of the API sends: the token of this run."""
        return {"Authorization": f"Bearer {self.api_token}"}

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
            "dashboard": self.dashboard.url if self.dashboard else None,
            "kubeconfig": str(self.kubeconfig),
            "brokers": self.broker_urls(),
            "kafka": self.eventing.kafka_status() if self.eventing else "not running",
            "prometheus": self.observability.url if self.observability else None,
            "services": self.serving.describe() if self.serving else [],
            "triggers": triggers,
            "template": self.template.describe() if self.template else {"state": "off"},
        }
