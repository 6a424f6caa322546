"""JSON patch (RFC 6902, by jsonpatch) and merge patch for the local API server."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from troupe.local.controlplane.patch import PatchError, json_patch, merge_patch
from troupe.local.errors import InvalidFieldError

SERVICE: dict[str, Any] = {"metadata": {"name": "echo"}, "spec": {
    "template": {"metadata": {"name": "echo-v1"}},
    "traffic": [{"revisionName": "echo-v1", "percent": 100}]}}


def test_operations_apply_in_order_to_a_copy() -> None:
    before = copy.deepcopy(SERVICE)

    patched = json_patch(SERVICE, [
        {"op": "add", "path": "/spec/traffic/-", "value": {"revisionName": "v2", "percent": 0}},
        {"op": "replace", "path": "/spec/traffic/0/percent", "value": 50},
        {"op": "replace", "path": "/spec/traffic/1/percent", "value": 50},
        {"op": "test", "path": "/metadata/name", "value": "echo"},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels"},
        {"op": "move", "from": "/metadata/labels", "path": "/metadata/alias"},
        {"op": "remove", "path": "/spec/template/metadata/name"},
    ])

    assert [t["percent"] for t in patched["spec"]["traffic"]] == [50, 50]
    assert patched["metadata"]["alias"] == "echo"
    assert patched["spec"]["template"]["metadata"] == {}
    assert before == SERVICE


@pytest.mark.parametrize(("operations", "field"), [
    ([{"op": "replace", "path": "/spec/traffic/¹", "value": {}}], "spec.traffic.¹"),
    ([{"op": "replace", "path": "/spec/traffic/01/percent", "value": 1}],
     "spec.traffic.01.percent"),
    ([{"op": "add", "path": "/spec/traffic/5", "value": {}}], "spec.traffic[5]"),
    ([{"op": "remove", "path": "/spec/absent"}], "spec.absent"),
    ([{"op": "test", "path": "/metadata/name", "value": "other"}], "metadata.name"),
    ([{"op": "replace", "path": "/spec/traffic/0/percent"}], "spec.traffic[0].percent"),
    ([{"op": "jump", "path": "/spec"}], "spec"),
    ([{"op": "add", "path": "/metadata/name/x", "value": 1}], "metadata.name.x"),
    ([{"op": "add", "value": 1}], "patch[0]"),
    ([{"op": "test", "path": "/metadata/name", "value": "echo"}, "remove"], "patch[1]"),
    ({"op": "remove", "path": "/spec"}, "patch"),
])
def test_a_patch_that_cannot_apply_names_the_field(operations: Any, field: str) -> None:
    with pytest.raises(PatchError) as error:
        json_patch(SERVICE, operations)

    assert error.value.field == field
    # The API answers every InvalidFieldError with 422 and the field as its cause.
    assert isinstance(error.value, InvalidFieldError)


def test_a_failing_operation_leaves_the_target_unchanged() -> None:
    before = copy.deepcopy(SERVICE)
    with pytest.raises(PatchError):
        json_patch(SERVICE, [{"op": "replace", "path": "/spec/traffic/0/percent", "value": 0},
                             {"op": "remove", "path": "/spec/absent"}])
    assert before == SERVICE


def test_merge_patch_removes_nulls_and_replaces_lists() -> None:
    patched = merge_patch(SERVICE, {"spec": {"traffic": [{"latestRevision": True}],
                                             "template": None}})
    assert patched["spec"] == {"traffic": [{"latestRevision": True}]}
