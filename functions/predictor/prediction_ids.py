"""Prediction ids that carry what feedback needs, so any instance can take the feedback.

Knative may run several instances of a revision, and feedback can arrive after the
revision that predicted is gone; an id remembered by one process would then be unknown.
So an id encodes the model version and the prediction itself (plus a nonce); with
TROUPE_FEEDBACK_KEY set (from a Secret), it is also signed, so clients cannot forge
feedback for predictions that were never made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any


class InvalidPredictionIdError(ValueError):
    """The id was not made by a predictor sharing this key."""


@dataclass(frozen=True)
class PredictionRef:
    version: str
    prediction: Any


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload: str) -> str:
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()[:24]


def encode(version: str, prediction: Any, key: bytes) -> str:
    payload = f"{_b64(json.dumps([version, prediction]).encode())}.{secrets.token_hex(8)}"
    return f"{payload}.{_mac(key, payload)}" if key else payload


def decode(prediction_id: str, key: bytes) -> PredictionRef:
    parts = prediction_id.split(".")
    if key:
        if len(parts) != 3 or not hmac.compare_digest(parts[2], _mac(key, ".".join(parts[:2]))):
            raise InvalidPredictionIdError("its signature does not match")
    elif len(parts) != 2:
        raise InvalidPredictionIdError("it does not have the shape of a prediction id")
    try:
        version, prediction = json.loads(_unb64(parts[0]))
    except (ValueError, TypeError):
        raise InvalidPredictionIdError("it does not decode") from None
    return PredictionRef(str(version), prediction)
