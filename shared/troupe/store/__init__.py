"""Datasets, model artifacts, the model registry, cached replies and entries that expire,
on file:// or s3://.

Typical use, in a handler::

    store = Store("s3://bucket/prefix")            # or Store.from_settings(ctx.settings)
    ref = store.put_dataset(csv_bytes)              # datasets/<sha256>.csv
    version = store.registry.reserve_version("default", key=f"{source}|{id}")
    artifact = store.save_model(model, name="default", version=version)
    store.registry.register("default", artifact=artifact, metrics=..., lineage=..., key=...)
    model = store.load_model(artifact.uri, artifact.sha256)   # checked, skops, trusted types
"""

from .errors import (
    ConflictError,
    IntegrityError,
    InvalidNameError,
    NotFoundError,
    ObjectTooLargeError,
    OutsideStoreError,
    StoreConfigError,
    StoreError,
)
from .expiry import EXPIRES_AT, Compactor, entry_key, is_expired, sweep_interval
from .registry import ModelRegistry, ModelVersion
from .replies import REPLIES_FOLDER, Claim, EventRef, Reply, ReplyCache
from .store import DEFAULT_URL, ObjectRef, Store

__all__ = [
    "DEFAULT_URL",
    "EXPIRES_AT",
    "REPLIES_FOLDER",
    "Claim",
    "Compactor",
    "ConflictError",
    "EventRef",
    "IntegrityError",
    "InvalidNameError",
    "ModelRegistry",
    "ModelVersion",
    "NotFoundError",
    "ObjectRef",
    "ObjectTooLargeError",
    "OutsideStoreError",
    "Reply",
    "ReplyCache",
    "Store",
    "StoreConfigError",
    "StoreError",
    "entry_key",
    "is_expired",
    "sweep_interval",
]
