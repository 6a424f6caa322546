"""Signed prediction ids, which carry what feedback needs so that any instance can take it.

Knative may run several instances of a revision, and feedback can arrive after the
revision that predicted is gone; an id remembered by one process would then be unknown.
So an id encodes the model, the version and the prediction itself, when it was made and a
nonce, and it is signed with TROUPE_FEEDBACK_KEY (from the `troupe-feedback` Secret).
Feedback steers promotion, rollback and retraining, so there is no unsigned form: a client
can label only predictions that a predictor holding the key made.

An id is `<payload>.<nonce>.<mac>`: the payload is base64url of the JSON list
`[model, version, prediction, issued_at]`, the nonce 16 hex digits, and the mac the first
24 hex digits (96 bits) of HMAC-SHA256 over `<payload>.<nonce>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any, Final

# Longer than any id a predictor makes for a class label; anything longer is refused
# before it is decoded.
MAX_ID_LENGTH: Final = 2048
_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[0-9a-f]{16}\.[0-9a-f]{24}", re.ASCII)


class PredictionIdError(ValueError):
    """Root of why an id cannot be taken."""


class MalformedPredictionIdError(PredictionIdError):
    """The text does not have the shape of a prediction id (or is too long)."""


class ForgedPredictionIdError(PredictionIdError):
    """The id has the right shape, but no predictor sharing this key made it."""


@dataclass(frozen=True)
class PredictionRef:
    model: str
    version: str
    prediction: Any
    issued_at: float  # Unix seconds, by the clock of the predictor that made it


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode("ascii"), hashlib.sha256).hexdigest()[:24]


def encode(ref: PredictionRef, key: bytes) -> str:
    if not key:
        raise ValueError("prediction ids are always signed: a key is required")
    made = json.dumps([ref.model, ref.version, ref.prediction, int(ref.issued_at)])
    payload = f"{_b64(made.encode('utf-8'))}.{secrets.token_hex(8)}"
    return f"{payload}.{_mac(key, payload)}"


def decode(prediction_id: str, key: bytes) -> PredictionRef:
    """The prediction behind `prediction_id`, once its shape and signature are checked:
    MalformedPredictionIdError or ForgedPredictionIdError otherwise."""
    if not key:
        raise ValueError("prediction ids are always signed: a key is required")
    if len(prediction_id) > MAX_ID_LENGTH or not _SHAPE.fullmatch(prediction_id):
        raise MalformedPredictionIdError(
            "it does not have the shape of an id from :predict (<payload>.<nonce>.<mac>, "
            f"base64url and hex, at most {MAX_ID_LENGTH} characters)"
        )
    payload, nonce, mac = prediction_id.split(".")
    if not hmac.compare_digest(mac, _mac(key, f"{payload}.{nonce}")):
        raise ForgedPredictionIdError("its signature does not match")
    try:
        model, version, prediction, issued_at = json.loads(_unb64(payload))
        return PredictionRef(str(model), str(version), prediction, float(issued_at))
    except (ValueError, TypeError, binascii.Error):
        # Signed with this key but unreadable: made by a predictor with another id format.
        raise MalformedPredictionIdError("it was signed, but does not decode") from None
