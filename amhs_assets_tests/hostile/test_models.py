"""Hostile files in the data folder: a crafted pickle planted in a registered version's artifacts
runs nothing in the API and the reload is refused naming the file; a stored asset value changed
after it was written fails the step that reads it."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import stat
from pathlib import Path

import dagster as dg
import mlflow
import mlflow.pyfunc
import numpy as np
import pytest
import skops.io as sio
from mlflow import MlflowClient

from amhs_assets.contract import CHAMPION_ALIAS, HORIZONS, REGISTERED_MODEL_NAME
from amhs_assets.defs.io_manager import AmhsIOManager
from amhs_assets.features.spec import FEATURE_VERSION
from amhs_assets.integrity import KEY_FILE, IntegrityError, seal_path, sha256_file
from amhs_assets.models.storage import load_model, save_model
from amhs_assets.registry.predictor import TAG_ARTIFACT_SHA256, AmhsPredictor, load_registered
from amhs_assets.registry.store import champion_for_evaluation
from amhs_assets.registry.tags import TAG_FEATURES
from amhs_assets_tests.support import (
    THRESHOLDS,
    TOKEN,
    new_store,
    register,
    rows,
    serving,
    simulated_rows,
    tiny_champion,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Payload:
    """Unpickling this runs `touch marker`: what an attacker plants."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_pickle(marker: Path) -> bytes:
    return pickle.dumps(Payload(marker))


def planted_version(uri: str, tmp: Path, label: str, plant) -> str:
    """A copy of the tiny champion's logged files, changed by plant(model_dir), registered with
    the champion's checksum tag and made champion; returns the version."""
    model_dir = tmp / label
    shutil.copytree(tiny_champion().model_dir, model_dir)
    plant(model_dir)
    client = MlflowClient(uri, uri)
    version = client.create_model_version(REGISTERED_MODEL_NAME, str(model_dir),
                                          tags={TAG_ARTIFACT_SHA256: tiny_champion().checksum})
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, version.version)
    return str(version.version)


def plant_pyfunc(model_dir: Path, pickle_marker: Path, code_marker: Path) -> None:
    """python_model.pkl beside MLmodel, MLmodel told to unpickle it, the code file rewritten."""
    (model_dir / "python_model.pkl").write_bytes(crafted_pickle(pickle_marker))
    mlmodel = [line for line in (model_dir / "MLmodel").read_text().splitlines()
               if "model_code_path:" not in line]
    (model_dir / "MLmodel").write_text("\n".join(mlmodel).replace(
        "loader_module: mlflow.pyfunc.loaders.code_model",
        "loader_module: mlflow.pyfunc.model\n    python_model: python_model.pkl") + "\n")
    (model_dir / "pyfunc_model.py").write_text(f"open({str(code_marker)!r}, 'w').close()\n")


def test_the_logged_model_holds_no_pickle_and_the_plants_are_live(tmp_path):
    files = [p.name for p in Path(tiny_champion().model_dir).rglob("*") if p.is_file()]
    assert "checksums.json" in files and "pyfunc_model.py" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".joblib"))], files
    # MLflow's own loader does run the plant (which is why the API never uses it)
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_champion().model_dir, model_dir)
    plant_pyfunc(model_dir, tmp_path / "pickle-fired", tmp_path / "code-fired")
    with contextlib.suppress(Exception):  # the payload returns no model
        mlflow.pyfunc.load_model(str(model_dir))
    assert (tmp_path / "pickle-fired").exists()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_planted_pickles_run_nothing_and_the_reload_is_refused_naming_the_file(tmp_path):
    uri = new_store(tmp_path)
    register(tiny_champion(), uri)
    markers = tmp_path / "markers"
    markers.mkdir()
    predictor = "artifacts/predictor"

    def replace_booster(d: Path) -> None:
        (d / predictor / "model/xgb_h10_avg.ubj").write_bytes(crafted_pickle(markers / "a"))

    def add_members(d: Path) -> None:
        (d / predictor / "model/sklearn_members.joblib").write_bytes(crafted_pickle(markers / "b"))

    def recompute_checksums(d: Path) -> None:  # the attacker rewrites checksums.json as well
        folder = d / predictor
        (folder / "model/xgb_h10_avg.ubj").write_bytes(crafted_pickle(markers / "c"))
        listed = json.loads((folder / "checksums.json").read_text())
        listed["files"]["model/xgb_h10_avg.ubj"] = sha256_file(folder / "model/xgb_h10_avg.ubj")
        (folder / "checksums.json").write_text(json.dumps(listed))

    cases = [(replace_booster, "model/xgb_h10_avg.ubj changed since it was written"),
             (add_members, "not written with the model: model/sklearn_members.joblib"),
             (recompute_checksums, "checksums.json changed since it was written")]
    with serving(tmp_path, uri) as server, server.client() as client:
        for plant, reason in cases:
            bad = planted_version(uri, tmp_path, plant.__name__, plant)
            answer = client.post("/v1/reload", headers=AUTH)
            assert answer.status_code == 502, answer.text
            assert f"version {bad}" in answer.json()["detail"] and reason in answer.json()["detail"]
            assert client.get("/v1/model").json()["version"] == "1"  # the served one stays
            assert client.post("/v1/predict", json={"rows": list(rows())}).status_code == 200
        # the probe of issue 16: python_model.pkl beside MLmodel, made to load it (MLflow's
        # loader would run it), and the pyfunc's code file rewritten. The API reads only the
        # verified predictor folder, so it serves that version unharmed and runs neither
        new = planted_version(uri, tmp_path, "python_model_pkl", lambda d: plant_pyfunc(
            d, markers / "d", markers / "e"))
        answer = client.post("/v1/reload", headers=AUTH)
        assert answer.status_code == 200 and answer.json()["model"]["version"] == new
        assert client.post("/v1/predict", json={"rows": list(rows())}).status_code == 200
    assert list(markers.iterdir()) == []  # no payload ran in the API process


def test_the_evaluation_loader_refuses_a_version_without_its_checksum_tag(tmp_path):
    uri = new_store(tmp_path)
    client = MlflowClient(uri, uri)
    client.create_registered_model(REGISTERED_MODEL_NAME)
    version = client.create_model_version(REGISTERED_MODEL_NAME, tiny_champion().model_dir,
                                          tags={TAG_FEATURES: FEATURE_VERSION}).version
    with pytest.raises(IntegrityError, match=f"version {version} .* no artifact_sha256 tag"):
        load_registered(client, REGISTERED_MODEL_NAME, version)
    # as champion, the evaluation leaves it out instead of failing the training
    client.set_registered_model_alias(REGISTERED_MODEL_NAME, CHAMPION_ALIAS, version)
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)  # as registry.connect() leaves them for the evaluation
    mlflow.set_registry_uri(uri)
    try:
        ref, predictor = champion_for_evaluation(client, REGISTERED_MODEL_NAME, FEATURE_VERSION)
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])
    assert ref.version == str(version) and predictor is None
    client.set_model_version_tag(REGISTERED_MODEL_NAME, version, TAG_ARTIFACT_SHA256,
                                 tiny_champion().checksum)
    loaded = load_registered(client, REGISTERED_MODEL_NAME, version)
    assert loaded.model_feature_names == tiny_champion().predictor.model_feature_names


# --- the ensemble's scikit-learn members ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ensemble():
    """An ensemble of a few trees and a 4-unit MLP on a day and a half (about 2 s)."""
    from amhs_assets.models.dataset import dataset_from_raw
    from amhs_assets.models.ensemble import EnsembleConfig, fit_ensemble_model
    from amhs_assets.models.xgb import XgbConfig, fit_xgb_model

    data = dataset_from_raw(simulated_rows(days=1.5), HORIZONS, THRESHOLDS)[1]
    xgb = fit_xgb_model(data, XgbConfig(num_boost_round=3, early_stopping_rounds=3, max_depth=2,
                                        max_bin=16, device="cpu", seed=3))
    model = fit_ensemble_model(data, xgb.horizon_models, EnsembleConfig(
        top_features=8, hgb_max_iter=3, hgb_max_rows=1000, mlp_hidden=(4,), mlp_epochs=1,
        mlp_max_rows=1000, seed=3))
    return model, data


def test_an_ensemble_saved_with_skops_loads_back_and_forecasts_the_same(tmp_path, tiny_ensemble):
    model, data = tiny_ensemble
    predictor = AmhsPredictor(model, {"feature_names": list(data.feature_names)})
    checksum = predictor.save(tmp_path / "p")
    names = sorted(p.name for p in (tmp_path / "p" / "model").iterdir())
    assert "sklearn_members.skops" in names and not [n for n in names if n.endswith(".joblib")]
    again = AmhsPredictor.load(tmp_path / "p", checksum)
    X = data.X[:50]
    for h in model.horizons:
        want, got = model.predict(X, h), again.model.predict(X, h)
        for key in ("avg", "min", "max", "proba"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-6)


class Smuggled:
    """A type no reviewer put on the trusted list."""

    def __init__(self):
        self.command = "touch marker"


def test_members_of_an_untrusted_type_or_pickled_with_joblib_are_refused(tmp_path, tiny_ensemble):
    model, data = tiny_ensemble
    folder = tmp_path / "model"
    save_model(model, folder, tuple(data.feature_names))
    sio.dump({"hgb_regressors": {"10|avg": Smuggled()}}, folder / "sklearn_members.skops")
    with pytest.raises(ValueError, match="sklearn_members.skops holds types outside the "
                                         "trusted list.*Smuggled"):
        load_model(folder)
    # the layout before skops: the manifest names no members file, a joblib pickle lies there
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["ensemble"]["members"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "sklearn_members.joblib").write_bytes(crafted_pickle(tmp_path / "fired"))
    with pytest.raises(ValueError, match="saved with joblib .* not loaded"):
        load_model(folder)
    assert not (tmp_path / "fired").exists()


# --- stored asset values ----------------------------------------------------------------------
@dg.asset
def feature_values() -> dict:
    """Feature rows a downstream step reads back."""
    return {"X": np.arange(4096, dtype=np.float64).reshape(512, 8)}


@dg.asset
def feature_total(feature_values: dict) -> float:
    """The sum of the stored rows."""
    return float(feature_values["X"].sum())


def materialize_total(manager, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize([feature_values.to_source_asset(), feature_total],
                          selection=[feature_total], resources={"io_manager": manager},
                          instance=instance, raise_on_error=False)


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(str(e.step_failure_data.error) for e in result.get_step_failure_events())


def test_a_stored_value_changed_after_writing_fails_the_step_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("AMHS_STORAGE_KEY", raising=False)
    storage = tmp_path / "storage"
    manager = AmhsIOManager(base_dir=str(storage))
    path = storage / "feature_values"
    with dg.instance_for_test() as instance:
        assert dg.materialize([feature_values], resources={"io_manager": manager},
                              instance=instance).success
        assert stat.S_IMODE((storage / KEY_FILE).stat().st_mode) == 0o600
        whole = materialize_total(manager, instance)
        assert whole.success and whole.output_for_node("feature_total") == 4095 * 4096 / 2
        data = bytearray(path.read_bytes())
        middle = len(data) // 2
        data[middle:middle + 16] = bytes(b ^ 0xFF for b in data[middle:middle + 16])
        path.write_bytes(bytes(data))
        flipped = materialize_total(manager, instance)
        assert not flipped.success
        message = failure_message(flipped)
        assert f"feature_values: stored value changed since it was written: {path}" in message
        # a planted pickle whose seal is recomputed as a plain SHA-256 (the key is unknown)
        marker = tmp_path / "fired"
        path.write_bytes(crafted_pickle(marker))
        seal_path(path).write_text(sha256_file(path))
        planted = materialize_total(manager, instance)
        assert not planted.success and "stored value changed" in failure_message(planted)
        assert not marker.exists()
        seal_path(path).unlink()
        unsealed = materialize_total(manager, instance)
        assert "has no seal (feature_values.hmac is missing)" in failure_message(unsealed)
        assert not marker.exists()
