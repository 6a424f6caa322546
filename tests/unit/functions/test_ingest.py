"""ingest, called directly: real files in a real file:// store, real pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent
from support.functions import load_function
from troupe.events import DATA_REJECTED, DATA_VALIDATED, make_event, validate
from troupe.events.codec import to_http_binary
from troupe.function import Context, SettingsError, create_app
from troupe.ml.catalog import validated_datasets
from troupe.ml.drift import FeatureBaseline
from troupe.ml.synthetic import synthetic_frame, to_csv_bytes, to_parquet_bytes
from troupe.store import Store

ingest = load_function("ingest")


def arrived(uri: str, **data: Any) -> CloudEvent:
    return make_event("data-arrived", {"uri": uri, "target": "label", **data}, source="/tests")


def run(store: Store, event: CloudEvent, **settings: Any) -> CloudEvent:
    ctx = Context(settings=ingest.IngestSettings(service="ingest", **settings), store=store,
                  event=event)
    reply = ingest.handle(event, ctx)
    validate(reply)
    return reply


def test_a_valid_csv_is_stored_by_hash_with_stats_and_catalogued(store: Store) -> None:
    content = to_csv_bytes(synthetic_frame(500, seed=3))
    store.write_bytes("incoming/batch-1.csv", content)

    reply = run(store, arrived("incoming/batch-1.csv", classes=[0, 1]))

    assert reply.get_type() == DATA_VALIDATED
    data = reply.get_data()
    assert data["rows"] == 500
    assert data["features"] == [f"f{i}" for i in range(6)]
    assert data["classes"] == [0, 1]
    assert data["model"] == "default"
    assert store.read_bytes(data["uri"]) == content
    assert data["uri"].endswith(f"datasets/{data['dataset_id']}.csv")
    stats = store.read_json(data["stats_uri"])
    assert stats["dataset_id"] == data["dataset_id"] and stats["rows"] == 500
    assert set(stats["features"]) == set(data["features"])
    baseline = FeatureBaseline.from_json(stats["features"]["f0"])
    assert len(baseline.edges) == 9 and sum(baseline.fractions) == pytest.approx(1)
    [entry] = validated_datasets(store, "default")
    assert entry["dataset_id"] == data["dataset_id"]
    assert entry["stats_uri"] == data["stats_uri"]


def test_the_same_content_is_catalogued_once_and_redelivery_replies_the_same(store: Store) -> None:
    content = to_csv_bytes(synthetic_frame(200))
    store.write_bytes("a.csv", content)
    store.write_bytes("copy/b.csv", content)
    event = arrived("a.csv", model="churn")

    first = run(store, event)
    again = run(store, event)
    other = run(store, arrived("copy/b.csv", model="churn"))

    assert (again.get_id(), again.get_data()) == (first.get_id(), first.get_data())
    assert other.get_data()["dataset_id"] == first.get_data()["dataset_id"]
    assert len(validated_datasets(store, "churn")) == 1
    assert validated_datasets(store, "default") == []


def test_parquet_is_read_when_declared_or_named(store: Store) -> None:
    store.write_bytes("p/batch.parquet", to_parquet_bytes(synthetic_frame(120)))
    named = run(store, arrived("p/batch.parquet"))
    assert named.get_type() == DATA_VALIDATED
    assert named.get_data()["uri"].endswith(".parquet")
    store.write_bytes("p/batch.bin", to_parquet_bytes(synthetic_frame(130)))
    declared = run(store, arrived("p/batch.bin", format="parquet"))
    assert declared.get_data()["rows"] == 130


def _write(store: Store, key: str, content: bytes) -> str:
    store.write_bytes(key, content)
    return key


@pytest.mark.parametrize(
    ("content", "uri", "extra", "expected"),
    [
        (to_csv_bytes(synthetic_frame(100).drop(columns=["f2"])), "in/x.csv",
         {"features": ["f0", "f1", "f2"]}, "missing columns: f2"),
        (to_csv_bytes(synthetic_frame(100).drop(columns=["label"])), "in/x.csv", {},
         "missing columns: label"),
        (bytes(range(256)) * 8, "in/x.csv", {}, "not CSV"),
        (to_parquet_bytes(synthetic_frame(100)), "in/x.csv", {}, "Parquet, not CSV"),
        (b"", "in/x.csv", {}, "empty"),
        (b"f0,f1,label\n", "in/x.csv", {}, "0 rows, fewer than the minimum of 50"),
        (to_csv_bytes(synthetic_frame(100, classes=3)), "in/x.csv", {"classes": [0, 1]},
         "labels not among the declared classes: 2"),
        (to_csv_bytes(synthetic_frame(30)), "in/x.csv", {}, "30 rows, fewer than the minimum"),
        (None, "in/absent.csv", {}, "there is no file at in/absent.csv"),
        (None, "../outside.csv", {}, "outside"),
        (None, "file:///etc/passwd", {}, "outside"),
        (None, "s3://elsewhere/data.csv", {}, "outside"),
    ],
)
def test_bad_input_is_rejected_with_its_reason_as_a_normal_reply(
    store: Store, content: bytes | None, uri: str, extra: dict[str, Any], expected: str
) -> None:
    if content is not None:
        _write(store, uri, content)
    reply = run(store, arrived(uri, **extra))
    assert reply.get_type() == DATA_REJECTED
    data = reply.get_data()
    assert data["uri"] == uri
    assert any(expected in reason for reason in data["reasons"]), data["reasons"]
    assert validated_datasets(store, "default") == []
    assert store.list("datasets/") == []


@pytest.mark.parametrize(("uri", "encode"), [("in/x.csv", to_csv_bytes),
                                              ("in/x.parquet", to_parquet_bytes)])
def test_a_dataset_over_the_size_limit_is_rejected_naming_the_limit(
    store: Store, uri: str, encode: Any
) -> None:
    content = encode(synthetic_frame(200))
    store.write_bytes(uri, content)

    over = run(store, arrived(uri), max_dataset_bytes=len(content) - 1)
    assert over.get_type() == DATA_REJECTED
    (reason,) = over.get_data()["reasons"]
    assert "TROUPE_MAX_DATASET_BYTES" in reason and f"{len(content) - 1} bytes" in reason
    assert store.list("datasets/") == []
    at_limit = run(store, arrived(uri), max_dataset_bytes=len(content))
    assert at_limit.get_type() == DATA_VALIDATED


@pytest.mark.parametrize(("uri", "encode"), [("in/x.csv", to_csv_bytes),
                                              ("in/x.parquet", to_parquet_bytes)])
def test_a_dataset_over_the_column_limit_is_rejected_naming_the_limit(
    store: Store, uri: str, encode: Any
) -> None:
    store.write_bytes(uri, encode(synthetic_frame(200, features=6)))  # 7 columns

    over = run(store, arrived(uri), max_columns=6)
    assert over.get_type() == DATA_REJECTED
    (reason,) = over.get_data()["reasons"]
    assert "7 columns" in reason and "TROUPE_MAX_COLUMNS" in reason and "6" in reason
    assert run(store, arrived(uri), max_columns=7).get_type() == DATA_VALIDATED


def test_the_column_limit_is_checked_on_the_header_before_any_row_is_parsed(
    store: Store,
) -> None:
    header = ",".join(f"f{i}" for i in range(9)) + ",label\n"
    row = ",".join(["1"] * 10) + "\n"
    broken_row = ",".join(["1"] * 14) + "\n"  # more fields than the rows before: unparseable
    store.write_bytes("in/wide.csv", (header + row + broken_row * 100).encode())

    over = run(store, arrived("in/wide.csv"), max_columns=5)
    assert over.get_data()["reasons"] == [
        "the file has 10 columns, more than ingest's limit of 5 (TROUPE_MAX_COLUMNS): leave "
        "out the columns the model does not need"]
    within = run(store, arrived("in/wide.csv"), max_columns=10)  # now the rows are read
    assert "not well-formed CSV" in within.get_data()["reasons"][0]


def test_a_folder_is_not_a_dataset(store: Store) -> None:
    store.write_bytes("in/part-0.csv", to_csv_bytes(synthetic_frame(100)))
    reply = run(store, arrived("in"))
    assert reply.get_type() == DATA_REJECTED
    assert "is a folder" in reply.get_data()["reasons"][0]


def test_event_limits_override_the_settings(store: Store) -> None:
    frame = synthetic_frame(40)
    frame.loc[:5, "f1"] = None
    store.write_bytes("small.csv", to_csv_bytes(frame))
    assert run(store, arrived("small.csv")).get_type() == DATA_REJECTED
    relaxed = run(store, arrived("small.csv", min_rows=10, max_null_fraction=0.2))
    assert relaxed.get_type() == DATA_VALIDATED
    stats = store.read_json(relaxed.get_data()["stats_uri"])
    assert stats["features"]["f1"]["null_fraction"] == pytest.approx(6 / 40)
    strict = run(store, arrived("small.csv", min_rows=10), max_null_fraction=0.1)
    assert "'f1' is 15.0% null" in strict.get_data()["reasons"][0]


def test_settings_are_read_from_the_environment_and_checked() -> None:
    settings = ingest.IngestSettings.from_env(
        {"TROUPE_MIN_ROWS": "5", "TROUPE_MAX_NULL_FRACTION": "0.3", "TROUPE_MODEL_NAME": "churn"}
    )
    assert (settings.min_rows, settings.max_null_fraction, settings.model_name) == (5, 0.3, "churn")
    with pytest.raises(SettingsError, match="TROUPE_MAX_NULL_FRACTION"):
        ingest.IngestSettings.from_env({"TROUPE_MAX_NULL_FRACTION": "2"})
    limits = ingest.IngestSettings.from_env(
        {"TROUPE_MAX_DATASET_BYTES": "1048576", "TROUPE_MAX_COLUMNS": "20"})
    assert (limits.max_dataset_bytes, limits.max_columns) == (1048576, 20)
    with pytest.raises(SettingsError, match="TROUPE_MAX_DATASET_BYTES"):
        ingest.IngestSettings.from_env({"TROUPE_MAX_DATASET_BYTES": "0"})
    with pytest.raises(SettingsError, match="TROUPE_MAX_COLUMNS"):
        ingest.IngestSettings.from_env({"TROUPE_MAX_COLUMNS": "1"})


def test_over_http_a_rejection_is_200_and_invalid_data_is_422(tmp_path: Path) -> None:
    store_url = f"file://{tmp_path}/store"
    settings = ingest.IngestSettings(service="ingest", store_url=store_url)
    app = create_app(ingest.handle, settings, consumes=ingest.CONSUMES)
    client = app.test_client()

    def post(event: CloudEvent) -> Any:
        message = to_http_binary(event)
        return client.post("/", headers=dict(message.headers), data=message.body)

    rejected = post(arrived("nowhere.csv"))
    assert rejected.status_code == 200
    assert rejected.headers["ce-type"] == DATA_REJECTED
    no_target = make_event("data-arrived", {"uri": "x.csv", "target": "label"}, source="/t")
    invalid = CloudEvent(
        {k: no_target.get_attributes()[k] for k in ("id", "source", "type", "specversion")}
        | {"datacontenttype": "application/json"},
        {"uri": "x.csv"},
    )
    assert post(invalid).status_code == 422
