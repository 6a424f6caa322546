"""`troupe capacity plan --apply`: the recommended scale, written onto each Service.

The recommendation becomes a JSON merge patch of the Service's revision template (the
autoscaling annotations and containerConcurrency), sent through the kubernetes client as
the deployer sends its traffic patches, so it works on the local runtime and on a cluster
alike. A template change makes a new revision, as any Knative template change does; a
patch that would change nothing is not sent, so that no revision is made for nothing.

Two cases are left alone, with a note: a Service without a recommendation, and a template
that names its revision (the deployer names the predictor's), because Knative refuses a
changed template under an existing revision name; its next rollout copies the template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from troupe.capacity import Recommendation, ServicePlan
from troupe.knative import Cluster, template_revision, traffic_of

SCALE = "autoscaling.knative.dev/"


@dataclass(frozen=True)
class Applied:
    """What --apply did to one Service: the patch sent (None: nothing sent) and why."""

    service: str
    patch: dict[str, Any] | None
    note: str


def scale_patch(service: Mapping[str, Any], recommended: Recommendation) -> dict[str, Any] | None:
    """The merge patch that gives `service` the recommended scale; None if it has it."""
    template = (service.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    wanted = {f"{SCALE}min-scale": str(recommended.min_scale),
              f"{SCALE}max-scale": str(recommended.max_scale),
              f"{SCALE}target": str(recommended.target)}
    changed = {key: value for key, value in wanted.items() if annotations.get(key) != value}
    concurrency = int((template.get("spec") or {}).get("containerConcurrency") or 0)
    patch_template: dict[str, Any] = {}
    if changed:
        patch_template["metadata"] = {"annotations": changed}
    if concurrency != recommended.container_concurrency:
        patch_template["spec"] = {"containerConcurrency": recommended.container_concurrency}
    return {"spec": {"template": patch_template}} if patch_template else None


def apply_plans(cluster: Cluster, plans: list[ServicePlan],
                services: Mapping[str, Mapping[str, Any]]) -> list[Applied]:
    """Patch every planned Service that has a recommendation; KnativeError propagates."""
    applied = []
    for plan in plans:
        name, recommended = plan.measured.service, plan.recommendation
        service = services[name]
        if recommended is None:
            applied.append(Applied(name, None, "not patched: no recommendation"))
            continue
        revision = template_revision(service)
        if revision is not None:
            applied.append(Applied(name, None, (
                f"not patched: its template names revision {revision!r}, and Knative refuses "
                "a changed template under an existing name; set the scale in the manifest, "
                "or let the next rollout (a new revision name) carry it")))
            continue
        patch = scale_patch(service, recommended)
        if patch is None:
            applied.append(Applied(name, None, "not patched: already as recommended"))
            continue
        cluster.patch_service(plan.measured.namespace, name, patch)
        pinned = [t.revision for t in traffic_of(service) if t.revision and t.percent > 0]
        note = "patched: a new revision takes the recommended scale"
        if pinned and not any(t.revision is None and t.percent > 0
                              for t in traffic_of(service)):
            note += (f"; traffic stays pinned to {', '.join(pinned)}, whose scale is fixed, "
                     "until it is routed to the new revision")
        applied.append(Applied(name, patch, note))
    return applied
