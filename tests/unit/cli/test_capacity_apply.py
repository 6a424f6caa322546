"""The merge patch that `troupe capacity plan --apply` sends for a recommendation."""

from __future__ import annotations

from typing import Any

from troupe.capacity import Recommendation
from troupe.cli._capacity_apply import scale_patch

SCALE = "autoscaling.knative.dev/"


def _service(annotations: dict[str, str], concurrency: int | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"image": "echo"}]}
    if concurrency is not None:
        spec["containerConcurrency"] = concurrency
    return {"metadata": {"name": "echo"},
            "spec": {"template": {"metadata": {"annotations": annotations}, "spec": spec}}}


RECOMMENDED = Recommendation(servers=3, min_scale=0, max_scale=3, target=1,
                             container_concurrency=1)


def test_the_patch_sets_what_differs_and_nothing_else() -> None:
    service = _service({f"{SCALE}min-scale": "0", f"{SCALE}max-scale": "5",
                        "troupe.dev/description": "kept"}, concurrency=None)
    assert scale_patch(service, RECOMMENDED) == {"spec": {"template": {
        "metadata": {"annotations": {f"{SCALE}max-scale": "3", f"{SCALE}target": "1"}},
        "spec": {"containerConcurrency": 1}}}}


def test_a_service_already_as_recommended_gets_no_patch() -> None:
    service = _service({f"{SCALE}min-scale": "0", f"{SCALE}max-scale": "3",
                        f"{SCALE}target": "1"}, concurrency=1)
    assert scale_patch(service, RECOMMENDED) is None


def test_unlimited_concurrency_is_kept_as_zero() -> None:
    service = _service({f"{SCALE}min-scale": "1", f"{SCALE}max-scale": "3",
                        f"{SCALE}target": "1"}, concurrency=None)
    unlimited = Recommendation(servers=3, min_scale=1, max_scale=3, target=1,
                               container_concurrency=0)
    assert scale_patch(service, unlimited) is None
