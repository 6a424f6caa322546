"""Models: versions, the champion, the traffic split and revisions, and each version's
accuracy, drift (PSI) and p95 latency over time from Prometheus, with deployments,
promotions, rollbacks and alarms marked where they happened.

The registry is the store's; the traffic is the serving Services' (each revision names its
model version in TROUPE_MODEL_VERSION); the marks are the events in the event log; the
series are the predictor's metrics, queried as the monitor queries them.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Final

import requests

from troupe.events import (
    CANARY_PASSED,
    METRIC_DEGRADED,
    MODEL_DEPLOYED,
    MODEL_PROMOTED,
    MODEL_ROLLED_BACK,
    resolve,
)
from troupe.local.controlplane.kinds import REVISION, SERVICE, Obj
from troupe.local.controlplane.objects import NotFound, ObjectStore
from troupe.local.dashboard.event_feed import EventFeed, event_time
from troupe.local.dashboard.http import Request, Response, Route, json_response
from troupe.store import Store, StoreError

log = logging.getLogger(__name__)
MARKED: Final = (MODEL_DEPLOYED, MODEL_PROMOTED, MODEL_ROLLED_BACK, METRIC_DEGRADED,
                 CANARY_PASSED)
WINDOW_S: Final = 6 * 3600  # the longest span a plot covers
POINTS: Final = 240
_QUERIES: Final = {
    "accuracy": "sum by (model_version) (increase(troupe_feedback_correct_total{sel}[{w}])) "
                "/ sum by (model_version) (increase(troupe_feedback_labeled_total{sel}[{w}]))",
    "psi": "max by (model_version) (troupe_feature_psi{sel})",
    "latency_p95": "histogram_quantile(0.95, sum by (model_version, le) "
                   "(rate(troupe_prediction_latency_seconds_bucket{sel}[{w}])))",
}


def models(store_url: str, objects: ObjectStore, feed: EventFeed | None,
           prometheus_url: str | None) -> dict[str, Any]:
    registry = _registry(store_url)
    serving = _serving(objects)
    marks = _marks(feed)
    names = sorted(set(registry) | set(serving) | {m["model"] for m in marks if m["model"]})
    now = time.time()
    shown = []
    for name in names:
        document = registry.get(name, {})
        created = [_epoch(v.get("created")) for v in document.get("versions", {}).values()]
        start = max(min([now - 600, *(c for c in created if c)]), now - WINDOW_S)
        series, problem = _series(prometheus_url, name, start, now)
        shown.append({
            "name": name,
            "champion": document.get("champion"),
            "champions": document.get("champions", []),
            "versions": [{"version": v, "created": r.get("created"), "metrics": r.get("metrics")}
                         for v, r in sorted(document.get("versions", {}).items(),
                                            key=lambda item: _number(item[0]))],
            "serving": serving.get(name, []),
            "marks": [m for m in marks if m["model"] == name],
            "series": series,
            "series_problem": problem,
            "start": start, "end": now,
        })
    return {"models": shown, "prometheus": prometheus_url}


def models_routes(store_url: str, objects: ObjectStore, feed: EventFeed | None,
                  prometheus_url: Any) -> list[Route]:
    def view(_: Request) -> Response:
        return json_response(models(store_url, objects, feed, prometheus_url()))

    return [Route.of("GET", "/api/models", view)]


def _registry(store_url: str) -> dict[str, dict[str, Any]]:
    try:
        store = Store(store_url)
        keys = [k for k in store.list("registry") if k.endswith(".json")]
        documents = [store.read_json(key) for key in keys]
    except StoreError as error:
        log.warning("models: the registry could not be read: %s", error)
        return {}
    return {str(d["name"]): d for d in documents if isinstance(d, dict) and d.get("name")}


def _serving(objects: ObjectStore) -> dict[str, list[dict[str, Any]]]:
    """Per model: the Services' traffic targets and revisions that serve a version of it."""
    found: dict[str, list[dict[str, Any]]] = {}
    for service in objects.list(SERVICE):
        namespace, name = service["metadata"]["namespace"], service["metadata"]["name"]
        traffic = (service.get("status") or {}).get("traffic") or \
            (service.get("spec") or {}).get("traffic") or []
        for target in traffic:
            revision = target.get("revisionName")
            model, version = _model_of(objects, namespace, revision)
            if model is None:
                continue
            found.setdefault(model, []).append({
                "service": name, "revision": revision, "version": version,
                "percent": target.get("percent", 0), "tag": target.get("tag"),
                "latest": bool(target.get("latestRevision"))})
    return found


def _model_of(objects: ObjectStore, namespace: str,
              revision: str | None) -> tuple[str | None, str | None]:
    if not revision:
        return None, None
    try:
        obj: Obj = objects.get(REVISION, namespace, revision)
    except NotFound:
        return None, None
    containers = (obj.get("spec") or {}).get("containers") or [{}]
    env = {e.get("name"): e.get("value") for e in containers[0].get("env") or []}
    return env.get("TROUPE_MODEL_NAME"), env.get("TROUPE_MODEL_VERSION")


def _marks(feed: EventFeed | None) -> list[dict[str, Any]]:
    marks = []
    for event in feed.events() if feed else []:
        if event.get_type() not in MARKED:
            continue
        data = event.get_data()
        if not isinstance(data, dict):
            continue
        when = event_time(event)
        marks.append({"time": when.timestamp() if when else None,
                      "kind": resolve(event.get_type()).short, "model": data.get("model"),
                      "version": data.get("version"),
                      "detail": data.get("metric") or data.get("strategy") or
                      data.get("reason") or "", "id": event.get_id()})
    return marks


def _series(url: str | None, model: str, start: float,
            end: float) -> tuple[dict[str, dict[str, list[list[float]]]], str | None]:
    if not url:
        return {}, "Prometheus is not running: start the runtime with it (apt-get install " \
                   "prometheus) to plot each version's metrics"
    step = max(5.0, (end - start) / POINTS)
    selector = '{model="' + model.replace("\\", "\\\\").replace('"', '\\"') + '"}'
    window = f"{max(int(step * 4), 30)}s"
    series: dict[str, dict[str, list[list[float]]]] = {}
    for name, query in _QUERIES.items():
        promql = query.replace("{sel}", selector).replace("{w}", window)
        try:
            answer = requests.get(f"{url}/api/v1/query_range", timeout=5, params={
                "query": promql, "start": str(start), "end": str(end), "step": str(step)})
            answer.raise_for_status()
            result = answer.json()["data"]["result"]
        except (requests.RequestException, ValueError, KeyError) as error:
            return series, f"Prometheus at {url} did not answer: {error}"
        series[name] = {
            str(item["metric"].get("model_version", "?")): [
                [float(t), float(v)] for t, v in item["values"] if math.isfinite(float(v))]
            for item in result}
    return series, None


def _epoch(text: Any) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def _number(version: str) -> tuple[int, str]:
    digits = version[1:]
    return (int(digits), version) if version.startswith("v") and digits.isdigit() else (0, version)
