"""troupe's event vocabulary: types, data schemas, lineage extensions and wire codecs."""

from .codec import (
    from_http,
    from_kafka,
    to_http_binary,
    to_http_structured,
    to_kafka,
)
from .errors import (
    EventError,
    InvalidEventDataError,
    InvalidExtensionError,
    MalformedEventError,
    UnknownEventTypeError,
    UnsupportedMediaTypeError,
)
from .extensions import (
    KNATIVE_ERROR_CODE,
    KNATIVE_ERROR_DATA,
    KNATIVE_ERROR_DEST,
    LINEAGE,
    MODELVERSION,
    RUNID,
    TRACEPARENT,
)
from .make import (
    compile_validators,
    lineage_of,
    make_event,
    schema_for,
    validate,
    validate_data,
    with_lineage,
)
from .vocabulary import (
    CANARY_PASSED,
    DATA_ARRIVED,
    DATA_REJECTED,
    DATA_VALIDATED,
    METRIC_DEGRADED,
    MODEL_APPROVED,
    MODEL_DEPLOYED,
    MODEL_PROMOTED,
    MODEL_REJECTED,
    MODEL_ROLLED_BACK,
    PING,
    ROLLBACK_REQUESTED,
    TRAINING_FAILED,
    TRAINING_FINISHED,
    TRAINING_REQUESTED,
    VOCABULARY,
    EventType,
    is_known,
    resolve,
)

__all__ = [
    "CANARY_PASSED", "DATA_ARRIVED", "DATA_REJECTED", "DATA_VALIDATED", "KNATIVE_ERROR_CODE",
    "KNATIVE_ERROR_DATA", "KNATIVE_ERROR_DEST", "LINEAGE",
    "METRIC_DEGRADED", "MODELVERSION", "MODEL_APPROVED", "MODEL_DEPLOYED", "MODEL_PROMOTED",
    "MODEL_REJECTED", "MODEL_ROLLED_BACK", "PING", "ROLLBACK_REQUESTED", "RUNID",
    "TRACEPARENT", "TRAINING_FAILED", "TRAINING_FINISHED", "TRAINING_REQUESTED", "VOCABULARY",
    "EventError", "EventType", "InvalidEventDataError", "InvalidExtensionError",
    "MalformedEventError", "UnknownEventTypeError", "UnsupportedMediaTypeError",
    "compile_validators", "from_http",
    "from_kafka", "is_known", "lineage_of", "make_event", "resolve", "schema_for",
    "to_http_binary", "to_http_structured", "to_kafka", "validate", "validate_data",
    "with_lineage",
]
