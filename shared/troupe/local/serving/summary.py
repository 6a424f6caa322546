"""What `troupe status` shows of a Service and of each of its revisions: readiness,
instances, the autoscaler's last decisions and promotions, and the queueing view (rho and
the predicted p95 wait) of its busiest revision.
"""

from __future__ import annotations

from troupe.local.controlplane.kinds import Obj
from troupe.local.serving.pool import Readiness, RevisionPool


def revision_summary(name: str, pool: RevisionPool, readiness: Readiness) -> Obj:
    return {"name": name, "ready": readiness.status == "True",
            "reason": readiness.reason, "message": readiness.message,
            "instances": len(pool.instances()),
            "autoscaler": pool.revision.scaling.autoscaler,
            "desired": pool.desired,
            "decisions": [list(d) for d in pool.decisions],
            "promotions": pool.promotions,
            **pool.queueing_summary()}


def service_summary(name: str, namespace: str, status: Obj, url: str,
                    revisions: list[Obj]) -> Obj:
    busiest = _busiest(revisions)
    return {
        "name": name, "namespace": namespace,
        "ready": all(c["status"] == "True" for c in status.get("conditions", [])),
        "url": url,
        "instances": sum(r["instances"] for r in revisions),
        "revisions": revisions,
        "traffic": status.get("traffic", []),
        # Each revision is a queue of its own; the Service shows its busiest.
        "utilization": busiest.get("utilization"),
        "predicted_p95_wait_s": busiest.get("predicted_p95_wait_s"),
    }


def _busiest(revisions: list[Obj]) -> Obj:
    """The revision with the highest utilisation; one with traffic but no instance (rho
    unknown) counts as busiest of all, since its requests wait for a cold start."""
    def load(revision: Obj) -> float:
        if revision["utilization"] is None:
            return float("inf") if revision["arrival_rate"] else -1.0
        return float(revision["utilization"])

    return max(revisions, key=load, default={})
