"""Secrets that an operator creates by hand on a cluster, made by `troupe up` for each run.

The manifests reference Secrets that are never shipped: credentials do not live in the
repository, and the README says how to create them on a cluster. Locally, the one a
function cannot do without is made here: `troupe-feedback`, the key that signs prediction
ids (the predictor takes no feedback without it). It is new for each run and lives only in
the runtime's memory and in the environment of the processes whose manifests reference
it; ids from an earlier run therefore take no feedback. A project that declares the Secret
itself keeps its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from typing import Final

FEEDBACK_SECRET: Final = "troupe-feedback"
FEEDBACK_KEY: Final = "TROUPE_FEEDBACK_KEY"
# 32 random bytes, as 64 hex digits: a full-strength HMAC-SHA256 key.
_KEY_BYTES: Final = 32

SecretData = Mapping[tuple[str, str], Mapping[str, str]]


def with_run_secrets(declared: SecretData, namespaces: Iterable[str]) -> SecretData:
    """The Secrets `declared` by the project, plus this run's own in each of `namespaces`
    where the project does not declare it."""
    key = secrets.token_hex(_KEY_BYTES)
    made = {(namespace, FEEDBACK_SECRET): {FEEDBACK_KEY: key} for namespace in namespaces}
    return {**made, **declared}
