"""`kubectl apply` of the project's manifests onto objects kept from an earlier run.

Each object made from a manifest carries the manifest as it was applied, in the annotation
kubectl uses (`kubectl.kubernetes.io/last-applied-configuration`), and the file it came
from. At the next `troupe up`, only what changed between that manifest and today's is
patched onto the live object, as a JSON merge patch (the patch kubectl sends for custom
resources). So a field the manifest changed wins, and what others set since (the
deployer's revisions and traffic, a label added with kubectl) stays unless the manifest
itself changed that field. Objects created through the API carry no manifest annotation
and are never touched; objects whose manifest is gone are deleted, like `apply --prune`.

The annotation holds the manifest exactly as kubectl writes it (Go's JSON, keys sorted,
`annotations: {}` when there are none, a final newline), so that a `kubectl apply` of the
same files afterwards finds nothing to change.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from troupe.local.controlplane.kinds import Obj
from troupe.local.controlplane.patch import merge_patch

LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
MANIFEST_FILE: Final = "troupe.dev/manifest"


def last_applied(manifest: Obj) -> str:
    """The annotation kubectl would write for `manifest`: Go's encoding/json of it, with
    the HTML-safe escapes Go makes, and the newline its encoder ends with."""
    obj = copy.deepcopy(manifest)
    annotations = obj["metadata"].get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    obj["metadata"]["annotations"] = annotations
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escape in _GO_ESCAPES.items():
        text = text.replace(char, escape)
    return text + "\n"


_GO_ESCAPES: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                      "\u2029": "\\u2029"}


def as_applied(manifest: Obj, file: str) -> Obj:
    """The object to create from `manifest`, remembering it and where it came from."""
    obj = copy.deepcopy(manifest)
    annotations = obj["metadata"].setdefault("annotations", {})
    annotations[LAST_APPLIED] = last_applied(manifest)
    annotations[MANIFEST_FILE] = file
    return obj


def from_manifest(obj: Obj) -> bool:
    return MANIFEST_FILE in ((obj.get("metadata") or {}).get("annotations") or {})


def applied_onto(live: Obj, manifest: Obj, file: str) -> Obj:
    """`live` with what changed in `manifest` since it was last applied."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    try:
        last = json.loads(annotations.get(LAST_APPLIED, "{}"))
    except json.JSONDecodeError:
        last = {}
    # Compared as kubectl records it (with `annotations: {}`), as `last` was recorded.
    result: Obj = merge_patch(live, changes(last, json.loads(last_applied(manifest))))
    live_template = (live.get("spec") or {}).get("template")
    template = (result.get("spec") or {}).get("template")
    manifest_names_one = ((manifest.get("spec") or {}).get("template") or {}).get(
        "metadata", {}).get("name")
    if (isinstance(template, dict) and template != live_template and not manifest_names_one
            and (template.get("metadata") or {}).get("name")):
        # The template changed under a revision name the deployer chose: a changed template
        # cannot reuse a revision's name, so the next revision gets a generated one.
        template["metadata"].pop("name")
    applied = as_applied(manifest, file)["metadata"]["annotations"]
    result["metadata"].setdefault("annotations", {}).update(
        {key: applied[key] for key in (LAST_APPLIED, MANIFEST_FILE)})
    return result


def changes(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            patch[key] = copy.deepcopy(value)
        elif old[key] != value:
            patch[key] = (changes(old[key], value)
                          if isinstance(old[key], dict) and isinstance(value, dict)
                          else copy.deepcopy(value))
    return patch
