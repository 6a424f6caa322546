"""How the runtime delivers over HTTP: one client (`client.py`, on an asyncio loop, with a
wall-clock deadline and a size cap per attempt, reading answers with httptools in
`response.py`) and one retry policy (`policy.py`, Knative's table).

The Broker's first attempts, retries and dead letters, PingSource, KafkaSource and the
serving fronts' calls to function instances all use them.
"""

from troupe.local.delivery.client import DeliveryClient, Landed
from troupe.local.delivery.policy import (
    DEFAULT_TIMEOUT_S,
    Attempt,
    AttemptFailed,
    Backoff,
    DeliveryAborted,
    Response,
    RetryPlan,
    is_retryable,
    retry_after_s,
    send_with_retries,
)
from troupe.local.delivery.response import DEFAULT_MAX_RESPONSE_BYTES, BadResponseError

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_TIMEOUT_S", "Attempt", "AttemptFailed", "Backoff",
           "BadResponseError", "DeliveryAborted", "DeliveryClient", "Landed", "Response",
           "RetryPlan", "is_retryable", "retry_after_s", "send_with_retries"]
