"""Which autoscaler a revision gets from its annotations, and the errors for bad ones."""

from __future__ import annotations

from typing import Any

import pytest
from troupe.capacity import WaitSLO
from troupe.local.controlplane.resources import InvalidFieldError
from troupe.local.serving.autoscaling import HPA, KPA, QUEUEING, scaling_policy

SCALE = "autoscaling.knative.dev/"
CONTAINER: dict[str, Any] = {"image": "echo"}


def test_without_annotations_it_is_knatives_default_class_and_windows() -> None:
    policy = scaling_policy({}, CONTAINER)
    assert (policy.autoscaler, policy.window, policy.panic_window) == (KPA, 60.0, 6.0)
    assert policy.scale_down_delay == 0.0 and policy.scales_to_zero


def test_the_queueing_class_reads_its_slo_and_windows() -> None:
    policy = scaling_policy({SCALE + "class": QUEUEING, "troupe.dev/wait-slo": "200ms@p95",
                             SCALE + "window": "20s", SCALE + "panic-window-percentage": "25",
                             SCALE + "scale-down-delay": "1m"}, CONTAINER)
    assert policy.wait_slo == WaitSLO(0.2, 0.95)
    assert (policy.window, policy.panic_window, policy.scale_down_delay) == (20.0, 5.0, 60.0)


def test_the_hpa_class_defaults_to_cpu_and_kubernetes_stabilisation() -> None:
    policy = scaling_policy({SCALE + "class": HPA, SCALE + "target": "80"},
                            {"image": "x", "resources": {"requests": {"cpu": "500m"}}})
    assert (policy.metric, policy.target, policy.cpu_request) == ("cpu", 80.0, 0.5)
    assert policy.scale_down_delay == 300.0 and not policy.scales_to_zero


@pytest.mark.parametrize(("annotations", "field", "hint"), [
    ({SCALE + "class": "custom.example.com"}, "class", "queueing.troupe.dev"),
    ({SCALE + "class": QUEUEING}, "troupe.dev/wait-slo", "200ms@p95"),
    ({SCALE + "class": QUEUEING, "troupe.dev/wait-slo": "200ms@p150"}, "wait-slo", "p100"),
    ({SCALE + "class": HPA, SCALE + "metric": "cpu"}, "target", "percent of the CPU"),
    ({SCALE + "class": HPA, SCALE + "metric": "rps", SCALE + "target": "5"}, "metric",
     "cpu, memory"),
    ({SCALE + "window": "2s"}, "window", "between 6s and 3600s"),
    ({SCALE + "window": "soon"}, "window", "duration"),
    ({SCALE + "panic-window-percentage": "0"}, "panic-window-percentage", "> 0"),
    ({SCALE + "panic-window-percentage": "150"}, "panic-window-percentage", "1 and 100"),
])
def test_a_bad_annotation_names_its_field_and_what_to_give(
        annotations: dict[str, str], field: str, hint: str) -> None:
    with pytest.raises(InvalidFieldError) as raised:
        scaling_policy(annotations, CONTAINER)
    assert field in raised.value.field and hint in raised.value.problem


def test_a_bad_cpu_request_is_refused() -> None:
    with pytest.raises(InvalidFieldError, match=r"requests\.cpu"):
        scaling_policy({SCALE + "class": HPA, SCALE + "target": "80"},
                       {"resources": {"requests": {"cpu": "lots"}}})
