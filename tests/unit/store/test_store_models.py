"""Model artifacts: skops round trips, tampered bytes and untrusted types are refused."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from troupe.ml.training import ESTIMATORS, build_pipeline
from troupe.store import IntegrityError, InvalidNameError, OutsideStoreError, Store
from troupe.store.artifacts import is_trusted_type


@pytest.fixture(scope="module")
def training() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    features = rng.normal(size=(80, 3))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    return features, labels


@pytest.fixture(scope="module")
def pipeline(training: tuple[Any, Any]) -> Pipeline:
    features, labels = training
    return Pipeline([("scale", StandardScaler()), ("model", LogisticRegression())]).fit(
        features, labels
    )


def double(values: Any) -> Any:
    return values * 2


class Custom:
    def __init__(self) -> None:
        self.weight = 1.0


def test_model_round_trip_predicts_the_same(
    store: Store, pipeline: Pipeline, training: tuple[Any, Any]
) -> None:
    features, _ = training
    ref = store.save_model(pipeline, name="default", version="v1")

    assert ref.uri == store.resolve("models/default/v1.skops")
    data = store.read_bytes(ref.uri)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert data[:2] == b"PK"  # a skops zip archive, not a pickle
    loaded = store.load_model(ref.uri, ref.sha256)
    assert np.array_equal(loaded.predict(features), pipeline.predict(features))


def test_forest_with_tree_internals_loads(file_store: Store, training: tuple[Any, Any]) -> None:
    features, labels = training
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(features, labels)
    ref = file_store.save_model(forest, name="default", version="v2")
    loaded = file_store.load_model(ref.uri, ref.sha256)
    assert np.array_equal(loaded.predict(features), forest.predict(features))


def test_a_saved_version_is_immutable(file_store: Store, training: tuple[Any, Any]) -> None:
    features, labels = training
    first = file_store.save_model(
        LogisticRegression().fit(features, labels), name="m", version="v1"
    )
    other = LogisticRegression(C=0.01).fit(features, labels)

    again = file_store.save_model(other, name="m", version="v1")
    assert again == first  # the redelivered save keeps what the registry recorded
    assert file_store.load_model(first.uri, first.sha256).C == 1.0

    replaced = file_store.save_model(other, name="m", version="v1", overwrite=True)
    assert replaced.sha256 != first.sha256
    assert file_store.load_model(replaced.uri, replaced.sha256).C == 0.01


def test_a_tampered_artifact_is_refused(store: Store, pipeline: Pipeline) -> None:
    ref = store.save_model(pipeline, name="default", version="v1")
    data = bytearray(store.read_bytes(ref.uri))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(ref.uri, bytes(data))

    with pytest.raises(IntegrityError, match="sha256") as raised:
        store.load_model(ref.uri, ref.sha256)
    assert ref.uri in str(raised.value)


def test_a_wrong_recorded_sha256_is_refused(file_store: Store, pipeline: Pipeline) -> None:
    ref = file_store.save_model(pipeline, name="default", version="v1")
    with pytest.raises(IntegrityError, match="was recorded"):
        file_store.load_model(ref.uri, "0" * 64)


def _plant(store: Store, obj: Any, key: str) -> tuple[str, str]:
    """Write an artifact the way an attacker with write access to the store could."""
    data = skops.io.dumps(obj)
    return store.write_bytes(key, data), hashlib.sha256(data).hexdigest()


def test_a_custom_function_in_a_pipeline_is_refused(
    store: Store, training: tuple[Any, Any]
) -> None:
    features, labels = training
    model = Pipeline([("f", FunctionTransformer(double)), ("m", LogisticRegression())])
    uri, sha = _plant(store, model.fit(features, labels), "models/default/v9.skops")

    with pytest.raises(IntegrityError) as raised:
        store.load_model(uri, sha)
    assert f"{__name__}.double" in str(raised.value)
    assert "FunctionTransformer" in str(raised.value)


def test_a_custom_class_is_refused(file_store: Store) -> None:
    uri, sha = _plant(file_store, {"model": Custom()}, "models/default/v9.skops")
    with pytest.raises(IntegrityError, match=rf"{__name__}\.Custom"):
        file_store.load_model(uri, sha)


def test_a_function_from_a_trusted_package_is_refused(file_store: Store) -> None:
    # numpy.load is in a trusted package, but calling it on data reads files.
    model = Pipeline([("f", FunctionTransformer(np.load)), ("m", LogisticRegression())])
    uri, sha = _plant(file_store, model, "models/default/v9.skops")
    with pytest.raises(IntegrityError, match=r"numpy\.load"):
        file_store.load_model(uri, sha)


def _artifact_naming(module: str, class_name: str) -> bytes:
    """A skops artifact whose one object claims to be `module.class_name`, as an attacker
    who writes the archive by hand would make it."""
    archive = zipfile.ZipFile(io.BytesIO(skops.io.dumps({"model": Custom()})))
    schema = json.loads(archive.read("schema.json"))
    node = schema["content"]["model"]
    assert (node["__module__"], node["__class__"]) == (__name__, "Custom")
    node["__module__"], node["__class__"] = module, class_name
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as rewritten:
        rewritten.writestr("schema.json", json.dumps(schema))
    return out.getvalue()


@pytest.mark.parametrize(
    ("module", "class_name"),
    [
        ("numpy.f2py.rules", "Path"),  # pathlib.Path, imported by a numpy module
        ("numpy", "memmap"),  # a numpy class that writes through to a file
        ("numpy.ctypeslib", "c_intp"),  # a ctypes integer: raw memory
    ],
)
def test_types_that_only_look_like_numpy_are_refused(
    file_store: Store, module: str, class_name: str
) -> None:
    data = _artifact_naming(module, class_name)
    name = f"{module}.{class_name}"
    assert name in skops.io.get_untrusted_types(data=data)  # troupe's check decides
    uri = file_store.write_bytes("models/default/v9.skops", data)

    with pytest.raises(IntegrityError, match="does not trust") as raised:
        file_store.load_model(uri, hashlib.sha256(data).hexdigest())
    assert name in str(raised.value)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_model_the_trainer_builds_loads(
    file_store: Store, training: tuple[Any, Any], estimator: str
) -> None:
    features, labels = training
    model = build_pipeline(estimator, seed=3).fit(features, labels)
    ref = file_store.save_model(model, name="default", version=estimator.replace("_", "-"))
    loaded = file_store.load_model(ref.uri, ref.sha256)
    assert np.array_equal(loaded.predict(features), model.predict(features))


def test_bytes_that_are_not_skops_are_refused(file_store: Store) -> None:
    import pickle

    data = pickle.dumps({"a": 1})
    uri = file_store.write_bytes("models/default/v9.skops", data)
    with pytest.raises(IntegrityError, match="not a readable skops artifact"):
        file_store.load_model(uri, hashlib.sha256(data).hexdigest())


def test_models_outside_the_store_are_refused(file_store: Store, tmp_path: Any) -> None:
    with pytest.raises(OutsideStoreError):
        file_store.load_model(f"file://{tmp_path}/elsewhere.skops", "0" * 64)


@pytest.mark.parametrize(
    ("name", "trusted"),
    [
        ("sklearn.tree._tree.Tree", True),
        ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
        ("numpy.dtype", True),
        ("numpy.random.Generator", True),
        ("scipy.sparse._csr.csr_matrix", True),
        ("collections.OrderedDict", True),
        # Names under a trusted package for classes that are not its own, or that reach
        # memory, files or processes.
        ("numpy.f2py.rules.Path", False),
        ("numpy.f2py.rules.os", False),
        ("numpy.memmap", False),
        ("numpy.ctypeslib.c_intp", False),
        ("numpy.lib.npyio.NpzFile", False),
        ("numpy.lib.npyio.DataSource", False),
        ("scipy.LowLevelCallable", False),
        ("scipy.io.FortranFile", False),
        ("sklearn.utils.parallel.Parallel", False),
        ("sklearn.utils._testing.TempMemmap", False),
        ("numpy.load", False),
        ("sklearn.datasets.fetch_openml", False),
        ("sklearn.does.not.Exist", False),
        ("numpyevil.Thing", False),
        ("builtins.eval", False),
        ("os.system", False),
    ],
)
def test_trust_policy(name: str, trusted: bool) -> None:
    assert is_trusted_type(name) is trusted


@pytest.mark.parametrize("version", ["../v1", "v1/x", "", ".hidden", "v 1"])
def test_model_names_and_versions_must_be_plain(
    file_store: Store, pipeline: Pipeline, version: str
) -> None:
    with pytest.raises(InvalidNameError):
        file_store.save_model(pipeline, name="default", version=version)
    with pytest.raises(InvalidNameError):
        file_store.save_model(pipeline, name=version, version="v1")


@pytest.fixture(autouse=True)
def _no_pickle(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Loading must never fall back to pickle: make any attempt fail loudly."""
    import pickle

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the store unpickled something")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    yield
