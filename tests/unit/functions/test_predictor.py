"""The predictor over Flask's test client and as a real server on loopback, with a real
skops model saved in a temporary store."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.functions import load_function
from troupe.function import SettingsError
from troupe.ml.drift import baseline_bins
from troupe.store import Store
from werkzeug.serving import make_server

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
KEY = "k" * 32


predictor = load_function("predictor")
prediction_ids = load_function("predictor", "prediction_ids")


@dataclass(frozen=True)
class Served:
    store: Store
    env: dict[str, str]
    model: Any
    frame: pd.DataFrame
    target: np.ndarray


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Iris, a scaled logistic regression, its baseline stats and a registered version."""
    store = Store(f"file://{tmp_path_factory.mktemp('store')}")
    iris = load_iris(as_frame=True)
    frame = iris.data.set_axis(FEATURES, axis=1)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(frame, iris.target)
    version = store.registry.reserve_version("default", key="test|1")
    artifact = store.save_model(model, name="default", version=version)
    stats = {"features": {f: {"kind": "numeric", **baseline_bins(frame[f]).to_json()}
                          for f in FEATURES}}
    stats_uri = store.write_json("stats/iris.json", stats)
    store.registry.register(
        "default", artifact=artifact, metrics={"accuracy": 0.97}, key="test|1",
        lineage={"features": FEATURES, "stats_uri": stats_uri, "target": "species",
                 "classes": [0, 1, 2], "dataset_ids": []},
    )
    env = {"TROUPE_STORE_URL": store.url, "TROUPE_MODEL_URI": artifact.uri,
           "TROUPE_MODEL_SHA256": artifact.sha256, "TROUPE_MODEL_VERSION": version,
           "TROUPE_DRIFT_MIN_SAMPLES": "30", "TROUPE_FEEDBACK_KEY": KEY}
    return Served(store, env, model, frame, iris.target.to_numpy())


def make_app(served: Served, **overrides: str) -> Flask:
    settings = predictor.PredictorSettings.from_env({**served.env, **overrides})
    app: Flask = predictor.create_predictor_app(settings, served.store)
    return app


@pytest.fixture()
def client(served: Served) -> FlaskClient:
    return make_app(served).test_client()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Metric samples by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(text: str, name: str, **labels: str) -> float:
    wanted = {"model": "default", "model_version": "v1", **labels}
    return samples(text)[(name, tuple(sorted(wanted.items())))]


# -- readiness -----------------------------------------------------------------------------
def test_model_status_names_the_loaded_version(client: FlaskClient) -> None:
    answer = client.get("/v1/models/default")
    assert answer.status_code == 200
    assert answer.json == {"name": "default", "ready": True, "version": "v1"}
    assert client.get("/health/readiness").status_code == 200
    assert client.get("/health/liveness").status_code == 200


def test_without_a_model_it_is_up_but_not_ready_to_predict(served: Served) -> None:
    settings = predictor.PredictorSettings.from_env({"TROUPE_STORE_URL": served.store.url})
    client = predictor.create_predictor_app(settings, served.store).test_client()
    status = client.get("/v1/models/default")
    assert status.status_code == 503
    assert status.json["ready"] is False
    assert "TROUPE_MODEL_URI" in status.json["error"]
    refused = client.post("/v1/models/default:predict", json={"instances": [[1, 2, 3, 4]]})
    assert refused.status_code == 503
    assert "no model is configured" in refused.json["error"]
    # The process itself is healthy: Knative may route to it and it explains itself.
    assert client.get("/health/readiness").status_code == 200


def test_a_tampered_checksum_is_refused_and_the_revision_is_unready(served: Served) -> None:
    client = make_app(served, TROUPE_MODEL_SHA256="0" * 64).test_client()
    readiness = client.get("/health/readiness")
    assert readiness.status_code == 503
    assert "sha256" in readiness.json["message"]
    assert client.get("/v1/models/default").json["ready"] is False


def test_a_model_uri_outside_the_store_is_refused(served: Served, tmp_path: Path) -> None:
    client = make_app(served, TROUPE_MODEL_URI=f"file://{tmp_path}/elsewhere.skops").test_client()
    answer = client.get("/v1/models/default")
    assert answer.status_code == 503
    assert "could not be loaded" in answer.json["error"]


# -- predict -------------------------------------------------------------------------------
def test_predicts_rows_given_as_lists_or_objects(client: FlaskClient, served: Served) -> None:
    rows = served.frame.iloc[[0, 60, 120]]
    expected = served.model.predict(rows).tolist()
    as_lists = client.post("/v1/models/default:predict",
                           json={"instances": rows.to_numpy().tolist()})
    as_objects = client.post("/v1/models/default:predict",
                             json={"instances": rows.to_dict(orient="records")})
    assert as_lists.status_code == 200, as_lists.json
    assert as_lists.json["predictions"] == expected == as_objects.json["predictions"]
    ids = as_lists.json["ids"] + as_objects.json["ids"]
    assert len(set(ids)) == 6


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"instances": [[1.0, 2.0, 3.0]]}, 400, "has 3 values; expected a list of 4 values"),
        ({"instances": [{"sepal_length": 1.0}]}, 400, "missing: ['sepal_width'"),
        ({"instances": [dict.fromkeys([*FEATURES, "colour"], 1.0)]}, 400, "unexpected: ['colour']"),
        ({"instances": []}, 400, '{"instances": [...]}'),
        ({"rows": [[1, 2, 3, 4]]}, 400, '{"instances": [...]}'),
        ({"instances": [[1, 2, 3, [4]]]}, 400, "nested list"),
        ({"instances": [["a", "b", "c", "d"]]}, 400, "could not score"),
        ({"instances": [5]}, 400, "instance 0 is a int"),
    ],
)
def test_wrong_shapes_get_a_4xx_saying_what_was_expected(
    client: FlaskClient, body: Any, status: int, says: str
) -> None:
    answer = client.post("/v1/models/default:predict", json=body)
    assert answer.status_code == status
    assert says in answer.json["error"]


def test_not_json_and_unknown_models_are_refused(client: FlaskClient) -> None:
    not_json = client.post("/v1/models/default:predict", data=b"1,2,3,4",
                           content_type="text/csv")
    assert not_json.status_code == 400
    assert "must be JSON" in not_json.json["error"]
    other = client.post("/v1/models/other:predict", json={"instances": [[1, 2, 3, 4]]})
    assert other.status_code == 404
    assert "/v1/models/default" in other.json["error"]
    assert client.get("/v1/models/other").status_code == 404


def test_too_many_instances_are_refused(served: Served) -> None:
    client = make_app(served, TROUPE_MAX_INSTANCES="2").test_client()
    answer = client.post("/v1/models/default:predict", json={"instances": [[1, 2, 3, 4]] * 3})
    assert answer.status_code == 400
    assert "at most 2" in answer.json["error"]


def test_a_body_over_the_limit_is_413_before_it_is_read(served: Served) -> None:
    client = make_app(served, TROUPE_MAX_EVENT_BYTES="1024").test_client()
    rows = [[5.1, 3.5, 1.4, 0.2]] * 60  # about 1.3 KiB of JSON
    answer = client.post("/v1/models/default:predict", json={"instances": rows})
    assert answer.status_code == 413
    assert "TROUPE_MAX_EVENT_BYTES" in answer.json["error"]
    assert client.post("/v1/models/default:predict",
                       json={"instances": rows[:20]}).status_code == 200
    default = make_app(served).test_client()
    assert default.post("/v1/models/default:feedback", data=b" " * (1024 * 1024 + 1),
                        content_type="application/json").status_code == 413


def test_instances_are_counted_while_parsing(served: Served) -> None:
    client = make_app(served, TROUPE_MAX_INSTANCES="2").test_client()
    # Three instances, then what would take long to parse (here: not even JSON). The
    # third instance stops the parse; the rest is never looked at.
    body = b'{"instances": [[5, 3, 1, 0.2], [5, 3, 1, 0.2], [5, 3, 1, 0.2], ' + b"?" * 100_000
    answer = client.post("/v1/models/default:predict", data=body,
                         content_type="application/json")
    assert answer.status_code == 400
    assert "more than 2 instances" in answer.json["error"]


def test_brackets_inside_strings_do_not_count_as_instances(served: Served) -> None:
    client = make_app(served, TROUPE_MAX_INSTANCES="2").test_client()
    body = {"instances": [[5, 3, 1, 0.2], [6, 3, 5, 2]], "note": "[[{{[[{{" * 10}
    answer = client.post("/v1/models/default:predict", json=body)
    assert answer.status_code == 200
    assert len(answer.json["predictions"]) == 2


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"instances": ' + b"[" * 100_000])
def test_a_body_nested_too_deep_is_a_400_never_a_500(client: FlaskClient, body: bytes) -> None:
    for route in ("predict", "feedback"):
        answer = client.post(f"/v1/models/default:{route}", data=body,
                             content_type="application/json")
        assert answer.status_code == 400
        assert "must be JSON" in answer.json["error"]


# -- feedback and metrics ------------------------------------------------------------------
def test_feedback_counts_labeled_and_correct(client: FlaskClient, served: Served) -> None:
    rows = served.frame.iloc[[0, 1, 2, 3]].to_numpy().tolist()
    answer = client.post("/v1/models/default:predict", json={"instances": rows}).json
    truth = served.model.predict(served.frame.iloc[[0, 1, 2, 3]]).tolist()
    wrong = (truth[3] + 1) % 3
    verdicts = [
        client.post("/v1/models/default:feedback", json={"id": i, "label": label}).json["correct"]
        for i, label in zip(answer["ids"], [truth[0], str(truth[1]), truth[2], wrong],
                            strict=True)
    ]
    assert verdicts == [True, True, True, False]
    text = client.get("/metrics").get_data(as_text=True)
    assert series(text, "troupe_feedback_labeled_total") == 4
    assert series(text, "troupe_feedback_correct_total") == 3
    assert series(text, "troupe_predictions_total") == 4
    assert series(text, "troupe_prediction_latency_seconds_count") == 1


def give(client: FlaskClient, prediction_id: str, label: Any) -> int:
    answer = client.post("/v1/models/default:feedback", json={"id": prediction_id, "label": label})
    return answer.status_code


def test_bad_feedback_is_refused_and_not_counted(client: FlaskClient) -> None:
    ids = client.post("/v1/models/default:predict",
                      json={"instances": [[5, 3, 1, 0.2]]}).json["ids"]
    assert give(client, ids[0], 0) == 200
    again = client.post("/v1/models/default:feedback", json={"id": ids[0], "label": 0})
    assert again.status_code == 409
    not_a_class = client.post("/v1/models/default:feedback", json={"id": ids[0], "label": 7})
    assert not_a_class.status_code == 400
    assert "[0, 1, 2]" in not_a_class.json["error"]
    assert client.post("/v1/models/default:feedback", json={"label": 0}).status_code == 400
    text = client.get("/metrics").get_data(as_text=True)
    assert series(text, "troupe_feedback_labeled_total") == 1


@pytest.mark.parametrize("bad_id", [
    "nope", "", "a.b.c", "\u00e9" * 10, "x" * 5000,
    "caf\u00e9.0123456789abcdef.0123456789abcdef01234567",
    "a b.0123456789abcdef.0123456789abcdef01234567",
    "x.0123456789abcdef." + "\u00e9" * 24,  # a non-ASCII signature: once a 500
])
def test_a_malformed_or_non_ascii_id_is_a_400_never_a_500(client: FlaskClient,
                                                          bad_id: str) -> None:
    answer = client.post("/v1/models/default:feedback", json={"id": bad_id, "label": 0})
    assert answer.status_code == 400
    assert "not an id from :predict" in answer.json["error"]


def signed(served: Served, *, model: str = "default", version: str = "v1",
           prediction: Any = 0, issued_at: float | None = None, key: str = KEY) -> str:
    """An id as a predictor holding `key` would sign it: what a leaked key could make."""
    ref = prediction_ids.PredictionRef(model, version, prediction,
                                       time.time() if issued_at is None else issued_at)
    made: str = prediction_ids.encode(ref, key.encode())
    return made


def test_feedback_is_counted_once_across_instances(served: Served) -> None:
    # Two apps on one store stand for two instances behind the same route.
    first, second = make_app(served).test_client(), make_app(served).test_client()
    (prediction_id,) = first.post("/v1/models/default:predict",
                                  json={"instances": [[5, 3, 1, 0.2]]}).json["ids"]
    assert give(second, prediction_id, 0) == 200
    duplicate = first.post("/v1/models/default:feedback", json={"id": prediction_id, "label": 1})
    assert duplicate.status_code == 409
    assert "already recorded" in duplicate.json["error"]
    assert series(first.get("/metrics").get_data(as_text=True),
                  "troupe_feedback_labeled_total") == 0


def test_a_counted_id_is_remembered_in_the_store_until_it_expires(served: Served) -> None:
    client = make_app(served, TROUPE_FEEDBACK_TTL_SECONDS="3600").test_client()
    issued = time.time()
    prediction_id = signed(served, issued_at=issued)
    assert give(client, prediction_id, 0) == 200
    (record,) = [served.store.read_json(key) for key in served.store.list("feedback")
                 if served.store.read_json(key)["id"] == prediction_id]
    # Past that, the id itself is refused as late, so forgetting it cannot recount it.
    assert record["expires_at"] >= int(issued) + 3600
    late = signed(served, issued_at=issued - 3601)
    answer = client.post("/v1/models/default:feedback", json={"id": late, "label": 0})
    assert answer.status_code == 410
    assert "TROUPE_FEEDBACK_TTL_SECONDS" in answer.json["error"]


def test_feedback_is_taken_by_any_instance_of_any_revision(served: Served) -> None:
    # Two apps stand for two instances; the second serves another version by then.
    first = make_app(served).test_client()
    ids = first.post("/v1/models/default:predict",
                     json={"instances": [[5, 3, 1, 0.2]] * 2}).json["ids"]
    other = make_app(served, TROUPE_MODEL_VERSION="v2-elsewhere").test_client()
    assert give(other, ids[0], 0) == 200
    text = other.get("/metrics").get_data(as_text=True)
    # Counted for the version that predicted, not the one that took the feedback.
    assert series(text, "troupe_feedback_labeled_total",
                  model_version=served.env["TROUPE_MODEL_VERSION"]) == 1


def test_a_version_the_registry_does_not_hold_is_refused_and_makes_no_series(
    client: FlaskClient, served: Served,
) -> None:
    for version in ("v999", "made-up-by-a-client"):
        answer = client.post("/v1/models/default:feedback",
                             json={"id": signed(served, version=version), "label": 0})
        assert answer.status_code == 404
        assert "registry does not hold" in answer.json["error"]
    other_model = client.post("/v1/models/default:feedback",
                              json={"id": signed(served, model="iris"), "label": 0})
    assert other_model.status_code == 404
    assert "/v1/models/iris:feedback" in other_model.json["error"]
    text = client.get("/metrics").get_data(as_text=True)
    versions = {dict(labels)["model_version"] for name, labels in samples(text)
                if name == "troupe_feedback_labeled_total"}
    assert versions == {"v1"}


def test_forged_signatures_are_refused(client: FlaskClient, served: Served) -> None:
    (prediction_id,) = client.post("/v1/models/default:predict",
                                   json={"instances": [[5, 3, 1, 0.2]]}).json["ids"]
    payload, nonce, _ = prediction_id.split(".")
    assert give(client, f"{payload}.{nonce}.{'0' * 24}", 0) == 404
    assert give(client, signed(served, key="another key, 32 characters long"), 0) == 404
    assert give(client, prediction_id, 0) == 200


def test_without_a_key_there_are_no_ids_and_no_feedback(served: Served) -> None:
    client = make_app(served, TROUPE_FEEDBACK_KEY="").test_client()
    answer = client.post("/v1/models/default:predict", json={"instances": [[5, 3, 1, 0.2]]})
    assert answer.status_code == 200 and "ids" not in answer.json
    # Not even an unsigned id in the old format, or a correctly signed one, is taken.
    payload = base64.urlsafe_b64encode(b'["v1", 0]').rstrip(b"=").decode()
    for prediction_id in (f"{payload}.0123456789abcdef", signed(served)):
        refused = client.post("/v1/models/default:feedback",
                              json={"id": prediction_id, "label": 0})
        assert refused.status_code == 503
        assert "troupe-feedback Secret" in refused.json["error"]


def test_a_short_key_stops_the_predictor_at_start(served: Served) -> None:
    with pytest.raises(SettingsError, match="at least 32"):
        predictor.PredictorSettings.from_env({**served.env, "TROUPE_FEEDBACK_KEY": "s3cret"})


def test_psi_rises_for_a_shifted_feature_only(client: FlaskClient, served: Served) -> None:
    rows = served.frame.sample(60, random_state=1, replace=True).reset_index(drop=True)
    rows["petal_length"] = rows["petal_length"] + 4.0  # far beyond the training range
    client.post("/v1/models/default:predict", json={"instances": rows.to_numpy().tolist()})
    text = client.get("/metrics").get_data(as_text=True)
    shifted = series(text, "troupe_feature_psi", feature="petal_length")
    steady = series(text, "troupe_feature_psi", feature="sepal_width")
    assert shifted > 1.0
    assert steady < 0.25


def test_inputs_are_counted_into_the_reference_bins(client: FlaskClient, served: Served) -> None:
    rows = served.frame.sample(40, random_state=2).reset_index(drop=True)
    client.post("/v1/models/default:predict", json={"instances": rows.to_numpy().tolist()})
    text = client.get("/metrics").get_data(as_text=True)
    counted = {dict(labels)["bin"]: value for (name, labels), value in samples(text).items()
               if name == "troupe_feature_bin_total"
               and dict(labels)["feature"] == "petal_length"}
    assert sum(counted.values()) == 40
    baseline = baseline_bins(served.frame["petal_length"])
    expected = baseline.bin_counts(rows["petal_length"].to_numpy())
    assert {int(b): v for b, v in counted.items()} == {
        i: float(c) for i, c in enumerate(expected) if c}


def test_no_psi_before_enough_samples(client: FlaskClient) -> None:
    client.post("/v1/models/default:predict", json={"instances": [[5, 3, 1, 0.2]] * 5})
    text = client.get("/metrics").get_data(as_text=True)
    assert not any(name == "troupe_feature_psi" for name, _ in samples(text))


# -- a real server -------------------------------------------------------------------------
@contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@pytest.fixture()
def server_url(served: Served) -> Iterator[str]:
    with serving(make_app(served)) as url:
        yield url


@pytest.mark.parametrize("name", ["default", "iris"])
def test_lists_the_model_it_serves_so_a_client_needs_no_name(served: Served, name: str) -> None:
    with serving(make_app(served, TROUPE_MODEL_NAME=name)) as url:
        listed = requests.get(f"{url}/v1/models", timeout=5)
        assert listed.status_code == 200
        assert listed.json() == {"models": [name]}  # KServe V1's list
        (found,) = listed.json()["models"]
        assert requests.get(f"{url}/v1/models/{found}", timeout=5).json()["ready"] is True
        rows = served.frame.iloc[:3]
        answer = requests.post(f"{url}/v1/models/{found}:predict",
                               json={"instances": rows.to_numpy().tolist()}, timeout=5)
        assert answer.json()["predictions"] == served.model.predict(rows).tolist()


def test_lists_no_model_when_the_revision_names_none(served: Served) -> None:
    settings = predictor.PredictorSettings.from_env({"TROUPE_STORE_URL": served.store.url})
    with serving(predictor.create_predictor_app(settings, served.store)) as url:
        listed = requests.get(f"{url}/v1/models", timeout=5)
        assert (listed.status_code, listed.json()) == (200, {"models": []})


def test_serves_predictions_and_feedback_over_loopback(server_url: str, served: Served) -> None:
    rows = served.frame.iloc[::10]
    answer = requests.post(f"{server_url}/v1/models/default:predict",
                           json={"instances": rows.to_numpy().tolist()}, timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["predictions"] == served.model.predict(rows).tolist()
    for prediction_id, label in zip(body["ids"], served.target[::10], strict=True):
        feedback = requests.post(f"{server_url}/v1/models/default:feedback",
                                 json={"id": prediction_id, "label": int(label)}, timeout=5)
        assert feedback.status_code == 200
    metrics = requests.get(f"{server_url}/metrics", timeout=5)
    labeled = series(metrics.text, "troupe_feedback_labeled_total")
    correct = series(metrics.text, "troupe_feedback_correct_total")
    assert labeled == len(rows)
    assert correct == sum(np.asarray(body["predictions"]) == served.target[::10])
