"""deployer: rolls model versions out through the predictor's Knative revisions and traffic.

model-approved      -> a new revision `predictor-<version>` with the model in its env
                       (`predictor-<model>-<version>` for a model other than
                       TROUPE_MODEL_NAME, so that two models' v1 never share a name);
                       `direct` sends it all the traffic, `canary` N% under the tag candidate
canary-passed       -> the candidate takes all the traffic and becomes the champion
rollback-requested  -> traffic goes back to the previous champion's revision

Every rollout is recorded in the store under `deployments/<model>.json` (oldest first),
with the cause event's `source|id`, so a redelivered event replies from the record instead
of rolling out twice, and rollback knows which version came before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cache
from typing import TYPE_CHECKING, Any, Final

from cloudevents.core.v1.event import CloudEvent
from troupe.events import (
    CANARY_PASSED,
    MODEL_APPROVED,
    MODELVERSION,
    ROLLBACK_REQUESTED,
    resolve,
)
from troupe.function import Context, PermanentError, Settings, TemporaryError, data_object
from troupe.knative import (
    CANDIDATE,
    KnativeError,
    TrafficTarget,
    canary_traffic,
    champion_traffic,
    revision_name,
    serving_champion,
    tagged,
    template_revision,
    traffic_of,
    with_model,
)
from troupe.store import NotFoundError

if TYPE_CHECKING:
    from troupe.knative import Cluster

STRATEGIES: Final = ("direct", "canary")
# States of a deployment record: what the version's revision was doing after the action.
SERVING, CANARY, PROMOTED, ROLLED_BACK = "serving", "canary", "promoted", "rolled-back"


@dataclass(frozen=True)
class DeployerSettings(Settings):
    deploy_strategy: str = "direct"  # direct | canary
    canary_percent: int = 10
    # The model the predictor Service serves. One predictor serves one model at a time;
    # TROUPE_DEPLOY_MODELS (comma-separated glob patterns, default: just model_name) lets
    # an approved model of another name take the predictor over, as the demo does with a
    # model of its own for each run. Models that match no pattern are refused.
    model_name: str = "default"
    deploy_models: str = ""
    namespace: str = "troupe"
    predictor_service: str = "predictor"
    kubeconfig: str = ""  # empty: in-cluster, then the default kubeconfig, then `troupe up`'s
    kube_context: str = ""

    def __post_init__(self) -> None:
        if self.deploy_strategy not in STRATEGIES:
            raise ValueError(
                f"TROUPE_DEPLOY_STRATEGY={self.deploy_strategy!r}: use one of {STRATEGIES}"
            )
        if not 0 < self.canary_percent < 100:
            raise ValueError(
                f"TROUPE_CANARY_PERCENT={self.canary_percent}: use a share from 1 to 99"
            )


CONSUMES: Final = (MODEL_APPROVED, CANARY_PASSED, ROLLBACK_REQUESTED)


def handle(event: CloudEvent, ctx: Context[DeployerSettings]) -> CloudEvent | None:
    data = data_object(event)
    model = str(data["model"])
    if not _rolls_out(ctx.settings, model):
        raise PermanentError(
            f"this deployer rolls out {_patterns(ctx.settings)} to the "
            f"{ctx.settings.predictor_service} Service; model {model!r} needs a predictor "
            "Service and a deployer of its own (TROUPE_MODEL_NAME, TROUPE_PREDICTOR_SERVICE), "
            "or a pattern in TROUPE_DEPLOY_MODELS"
        )
    cause = f"{event.get_source()}|{event.get_id()}"
    done = next((r for r in _history(ctx, model) if r.get("cause") == cause), None)
    if done is not None:
        return _reply(ctx, model, done)  # a redelivery: already rolled out
    action = {
        MODEL_APPROVED: _deploy,
        CANARY_PASSED: _promote,
        ROLLBACK_REQUESTED: _roll_back,
    }.get(resolve(event.get_type()).type)
    if action is None:
        raise PermanentError(f"the deployer does not handle {event.get_type()}")
    try:
        record = action(ctx, _cluster(ctx.settings.kubeconfig, ctx.settings.kube_context),
                        model, data)
    except KnativeError as error:
        raise TemporaryError(f"{error}", delay=10.0) from None
    if record is None:
        return None
    record = {**record, "cause": cause, "time": datetime.now(UTC).isoformat()}
    if record["state"] in (SERVING, PROMOTED, ROLLED_BACK):
        ctx.store.registry.set_champion(model, record["version"])
    # Recorded last: a failure before this point is redelivered and redone idempotently.
    ctx.store.update_json(_history_key(model), lambda old: [*(old or []), record], default=[])
    return _reply(ctx, model, record)


def _patterns(settings: DeployerSettings) -> list[str]:
    patterns = [p.strip() for p in settings.deploy_models.split(",") if p.strip()]
    return patterns or [settings.model_name]


def _rolls_out(settings: DeployerSettings, model: str) -> bool:
    return any(fnmatchcase(model, pattern) for pattern in _patterns(settings))


def _revision(settings: DeployerSettings, model: str, version: str) -> str:
    if model == settings.model_name:
        return revision_name(settings.predictor_service, version)
    return revision_name(settings.predictor_service, f"{model}-{version}")


@cache
def _cluster(kubeconfig: str, context: str) -> Cluster:
    # The kubernetes client loads with the first rollout: it is most of the deployer's
    # start-up, and a redelivered event is answered from the store without it.
    from troupe.knative import Cluster

    return Cluster.connect(kubeconfig or None, context or None)


# -- the three actions: each returns the deployment record to append -------------------


def _predictor_for(ctx: Context[DeployerSettings], cluster: Cluster, model: str,
                   data: Mapping[str, Any]) -> tuple[str, str, dict[str, Any],
                                                     list[TrafficTarget]]:
    """The version the event names, its revision, and the predictor Service as it is now,
    with its traffic."""
    settings = ctx.settings
    version = str(data["version"])
    service = cluster.get_service(settings.namespace, settings.predictor_service)
    return version, _revision(settings, model, version), service, traffic_of(service)


def _deploy(ctx: Context[DeployerSettings], cluster: Cluster, model: str,
            data: Mapping[str, Any]) -> dict[str, Any]:
    settings = ctx.settings
    version, revision, service, traffic = _predictor_for(ctx, cluster, model, data)
    if template_revision(service) == revision or any(t.revision == revision for t in traffic):
        # Already rolled out by an earlier delivery whose record was lost: no second rollout.
        state = CANARY if (c := tagged(traffic, CANDIDATE)) and c.revision == revision else SERVING
        return _record(model, version, revision, _strategy_of(state), state, traffic, ctx)
    uri, sha256 = _artifact(ctx, model, version, data)
    champion = serving_champion(traffic)
    champion_revision = champion.revision if champion else None
    ours = {str(record["revision"]) for record in _history(ctx, model)}
    # A canary compares two versions of one model; another model's champion is replaced.
    if (settings.deploy_strategy == "canary" and champion_revision is not None
            and champion_revision in ours):
        new_traffic = canary_traffic(champion_revision, revision, settings.canary_percent)
        state = CANARY
    else:  # direct, or a first deployment: there is no champion to compare a canary with
        new_traffic = champion_traffic(revision, champion_revision)
        state = SERVING
    template = with_model(
        (service.get("spec") or {}).get("template") or {},
        revision=revision,
        env={"TROUPE_MODEL_NAME": model, "TROUPE_MODEL_VERSION": version,
             "TROUPE_MODEL_URI": uri, "TROUPE_MODEL_SHA256": sha256},
    )
    cluster.patch_service(settings.namespace, settings.predictor_service, {"spec": {
        "template": template, "traffic": [t.to_manifest() for t in new_traffic]}})
    ctx.logger.info("deployed %s %s as %s (%s)", model, version, revision, state)
    return _record(model, version, revision, _strategy_of(state), state, new_traffic, ctx)


def _promote(ctx: Context[DeployerSettings], cluster: Cluster, model: str,
             data: Mapping[str, Any]) -> dict[str, Any]:
    settings = ctx.settings
    version, revision, _, traffic = _predictor_for(ctx, cluster, model, data)
    candidate, champion = tagged(traffic, CANDIDATE), serving_champion(traffic)
    if candidate is None or candidate.revision != revision:
        if champion is not None and champion.revision == revision and candidate is None:
            # Promoted by an earlier delivery whose record was lost.
            return _record(model, version, revision, "canary", PROMOTED, traffic, ctx)
        raise PermanentError(
            f"{model} {version} is not the canary (candidate: "
            f"{candidate.revision if candidate else 'none'}): nothing to promote"
        )
    previous = champion.revision if champion is not None else None
    new_traffic = champion_traffic(revision, previous)
    cluster.patch_service(settings.namespace, settings.predictor_service,
                          {"spec": {"traffic": [t.to_manifest() for t in new_traffic]}})
    ctx.logger.info("promoted %s %s to champion", model, version)
    return _record(model, version, revision, "canary", PROMOTED, new_traffic, ctx)


def _roll_back(ctx: Context[DeployerSettings], cluster: Cluster, model: str,
               data: Mapping[str, Any]) -> dict[str, Any]:
    settings = ctx.settings
    history = _history(ctx, model)
    chain = _champion_chain(history)
    versions: dict[str, str] = {str(r["revision"]): str(r["version"]) for r in history}
    prefix = _revision(settings, model, "v0").removesuffix("v0")

    def version_of(revision: str) -> str:
        return versions.get(revision, revision.removeprefix(prefix))

    service = cluster.get_service(settings.namespace, settings.predictor_service)
    traffic = traffic_of(service)
    candidate, champion = tagged(traffic, CANDIDATE), serving_champion(traffic)
    current = champion.revision if champion is not None else None
    asked_from = data.get("version")
    if current is None or current not in versions:
        raise PermanentError(
            f"{model} has no version deployed by troupe to roll back from: deploy one first"
        )
    if candidate is not None and candidate.revision is not None and (
        asked_from is None or version_of(candidate.revision) == asked_from
    ):
        # A canary in progress: withdraw it, the champion keeps everything.
        from_version, target_revision = version_of(candidate.revision), current
    else:
        from_version = version_of(current)
        if asked_from is not None and asked_from != from_version:
            raise PermanentError(
                f"cannot roll {model} back from {asked_from}: {from_version} is serving"
            )
        target = data.get("to_version") or _predecessor(chain, from_version)
        if target is None:
            raise PermanentError(
                f"{model} {from_version} has no earlier version to roll back to"
            )
        matches = [r["revision"] for r in history if r["version"] == target]
        if not matches or target == from_version:
            raise PermanentError(
                f"cannot roll {model} back to {target}: name an earlier deployed version"
            )
        target_revision = matches[-1]
    target_version = version_of(target_revision)
    previous = _predecessor(_restored(chain, target_version, bad=from_version), target_version)
    new_traffic = champion_traffic(
        target_revision,
        _revision(settings, model, previous) if previous else None,
    )
    cluster.patch_service(settings.namespace, settings.predictor_service,
                          {"spec": {"traffic": [t.to_manifest() for t in new_traffic]}})
    ctx.logger.info("rolled %s back from %s to %s", model, from_version, target_version)
    record = _record(model, target_version, target_revision, "direct", ROLLED_BACK,
                     new_traffic, ctx)
    record["from_version"] = from_version
    record["reason"] = str(data.get("reason", ""))
    if isinstance(data.get("canary"), dict):
        record["canary"] = dict(data["canary"])  # the monitor's test that withdrew a canary
    return record


# -- the deployment history ---------------------------------------------------------------


def _history_key(model: str) -> str:
    return f"deployments/{model}.json"


def _history(ctx: Context[DeployerSettings], model: str) -> list[dict[str, Any]]:
    records = ctx.store.read_json(_history_key(model), default=[])
    return list(records or [])


def _champion_chain(history: list[dict[str, Any]]) -> list[str]:
    """The versions that became champion, oldest first, without those rolled back from."""
    chain: list[str] = []
    for record in history:
        if record["state"] in (SERVING, PROMOTED):
            chain = _restored(chain, record["version"])
        elif record["state"] == ROLLED_BACK:
            chain = _restored(chain, record["version"], bad=record["from_version"])
    return chain


def _restored(chain: list[str], version: str, *, bad: str | None = None) -> list[str]:
    """The chain once `version` is champion again and `bad` is dropped for good."""
    return [v for v in chain if v not in (bad, version)] + [version]


def _predecessor(chain: list[str], version: str) -> str | None:
    earlier = chain[: chain.index(version)] if version in chain else chain
    return earlier[-1] if earlier else None


def _record(model: str, version: str, revision: str, strategy: str, state: str,
            traffic: list[TrafficTarget], ctx: Context[DeployerSettings]) -> dict[str, Any]:
    prefix = _revision(ctx.settings, model, "v0").removesuffix("v0")
    return {
        "model": model, "version": version, "revision": revision, "strategy": strategy,
        "state": state, "service": ctx.settings.predictor_service,
        "traffic": [
            {k: v for k, v in {
                "revision": t.revision, "tag": t.tag, "percent": t.percent,
                "version": t.revision.removeprefix(prefix) if t.revision else None,
            }.items() if v is not None}
            for t in traffic
        ],
    }


def _strategy_of(state: str) -> str:
    return "canary" if state == CANARY else "direct"


def _artifact(ctx: Context[DeployerSettings], model: str, version: str,
              data: Mapping[str, Any]) -> tuple[str, str]:
    """Only registered versions are deployed: the registry is where the champion is kept."""
    try:
        registered = ctx.store.registry.get(model, version)
    except NotFoundError:
        raise PermanentError(
            f"{model} {version} is not in the model registry: register it before approving"
        ) from None
    if data.get("sha256") and data["sha256"] != registered.sha256:
        raise PermanentError(
            f"{model} {version}: the event's sha256 differs from the registry's; "
            "the approval is not for the registered artifact"
        )
    return registered.artifact_uri, registered.sha256


# -- replies ----------------------------------------------------------------------------


def _reply(ctx: Context[DeployerSettings], model: str, record: Mapping[str, Any]) -> CloudEvent:
    name = {SERVING: "model-deployed", CANARY: "model-deployed", PROMOTED: "model-promoted",
            ROLLED_BACK: "model-rolled-back"}[record["state"]]
    keys = {"model-deployed": ("strategy",), "model-promoted": (),
            "model-rolled-back": ("from_version", "reason", "canary")}[name]
    data = {"model": model, "version": record["version"], "revision": record["revision"],
            "traffic": record["traffic"], "service": record["service"]}
    data.update({k: record[k] for k in keys if record.get(k)})
    return ctx.reply(name, data, extensions={MODELVERSION: record["version"]})
