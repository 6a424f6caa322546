"""Secrets that an operator creates by hand on a cluster, made by `troupe up` for each run.

The manifests reference Secrets that are never shipped: credentials do not live in the
repository, and the README says how to create them on a cluster. Locally, the one a
function cannot do without is made here: `troupe-feedback`, the key that signs prediction
ids (the predictor takes no feedback without it). It is made once, a Secret in the control
plane like any other, and kept with the other objects (in `.troupe/objects.json`, readable
by its owner only), so that ids signed before a restart still take feedback after it, as
on a cluster. A project that declares the Secret itself keeps its own, and `troupe up
--fresh` makes a new one.
"""

from __future__ import annotations

import base64
import secrets
from typing import Final

FEEDBACK_SECRET: Final = "troupe-feedback"
FEEDBACK_KEY: Final = "TROUPE_FEEDBACK_KEY"
# 32 random bytes, as 64 hex digits: a full-strength HMAC-SHA256 key.
_KEY_BYTES: Final = 32


def run_secret(namespace: str) -> dict[str, object]:
    """A new `troupe-feedback` Secret for `namespace`, with a random key."""
    key = secrets.token_hex(_KEY_BYTES)
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": FEEDBACK_SECRET, "namespace": namespace},
            "data": {FEEDBACK_KEY: base64.b64encode(key.encode()).decode()}}
