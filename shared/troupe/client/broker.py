"""Posting an event to a Broker ingress, as any HTTP client of Knative's broker does."""

from __future__ import annotations

import requests
from cloudevents.core.v1.event import CloudEvent

from troupe.events.codec import to_http_binary


class BrokerError(Exception):
    """The broker did not take an event; the message says why and what to do."""


def post_event(url: str, event: CloudEvent, timeout: float = 30.0) -> int:
    """POST an event in binary mode to a broker ingress; the status when it was taken."""
    message = to_http_binary(event)
    try:
        response = requests.post(url, headers=message.headers, data=message.body, timeout=timeout)
    except requests.ConnectionError:
        raise BrokerError(
            f"no broker answers at {url}: is the runtime up (`troupe status`)? nothing was sent"
        ) from None
    except requests.Timeout:
        raise BrokerError(f"the broker at {url} did not answer within {timeout:.0f} s") from None
    if response.status_code >= 300:
        raise BrokerError(
            f"the broker at {url} refused the event ({response.status_code}): "
            f"{response.text.strip()[:500]}"
        )
    return response.status_code
