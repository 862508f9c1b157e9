"""The refit: the served regressors blend the refitted boosters (refit_weight) with the
early-stopped ones, for every model kind, and keep doing so once saved and loaded."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from amhs_assets.contract import REGRESSION_TARGETS
from amhs_assets.models.dataset import ordered
from amhs_assets.models.ensemble import fit_ensemble_model
from amhs_assets.models.operating import AlarmConfig
from amhs_assets.models.splits import VAL
from amhs_assets.models.storage import MANIFEST, load_model, save_model
from amhs_assets.models.unified import fit_unified_model, with_horizon
from amhs_assets.models.xgb import baseline, fit_xgb_model, predict_booster
from amhs_assets_tests.models.test_explain import HORIZONS, TINY, TINY_ENSEMBLE, driven_dataset


@pytest.fixture(scope="module")
def blended_models():
    ds = driven_dataset()
    alarms = AlarmConfig(refit_weight=0.3)
    with threadpool_limits(1):
        per_horizon = fit_xgb_model(ds, TINY, alarms=alarms)
        return ds, {"xgb": per_horizon, "unified": fit_unified_model(ds, TINY, alarms=alarms),
                    "ensemble": fit_ensemble_model(ds, per_horizon.horizon_models,
                                                   TINY_ENSEMBLE, alarms=alarms)}


def _part(model, kind: str, h: int):
    return model if kind == "unified" else (
        model.horizon_models[h] if kind == "xgb" else model.xgb[h])


def _members(model, kind: str, X: np.ndarray, h: int, target: str) -> tuple[np.ndarray, ...]:
    """The forecast of the refitted and of the early-stopped booster, each on its own."""
    part = _part(model, kind, h)
    rows = with_horizon(X, float(h)) if kind == "unified" else X
    base = baseline(X[:, part.persistence_index], part.fallback)
    return (base + predict_booster(part.regressors[target], rows),
            base + predict_booster(part.early[target], rows))


@pytest.mark.parametrize("kind", ["xgb", "unified"])
def test_the_served_forecast_is_the_weighted_blend_of_refit_and_early_stopped(
        blended_models, kind):
    ds, models = blended_models
    model, X = models[kind], ds.X[ds.mask(VAL)][:300]
    for h in HORIZONS:
        assert _part(model, kind, h).refit_weight == 0.3
        served, early = model.predict(X, h), model.predict(X, h, early=True)
        members = {t: _members(model, kind, X, h, t) for t in REGRESSION_TARGETS}
        assert not np.allclose(*members["avg"])  # two different models
        blend = ordered({t: 0.3 * refit + 0.7 * stopped for t, (refit, stopped) in members.items()})
        stopped = ordered({t: m[1] for t, m in members.items()})
        for target in REGRESSION_TARGETS:
            np.testing.assert_allclose(served[target], blend[target], rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(early[target], stopped[target], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["xgb", "unified", "ensemble"])
def test_a_saved_blend_loads_back_and_forecasts_the_same(blended_models, kind, tmp_path):
    ds, models = blended_models
    save_model(models[kind], tmp_path / "m", ds.feature_names)
    loaded = load_model(tmp_path / "m")
    X = ds.X[:200]
    for h in HORIZONS:
        assert _part(loaded, kind, h).refit_weight == 0.3
        for early in (False, True):
            ours, theirs = models[kind].predict(X, h, early), loaded.predict(X, h, early)
            for target in REGRESSION_TARGETS:
                np.testing.assert_allclose(theirs[target], ours[target], rtol=1e-6)


def test_a_version_saved_before_the_blend_serves_its_refit_alone(blended_models, tmp_path):
    """A manifest without early-stopped boosters (saved before the blend) loads as it was
    served then: the refitted regressors alone."""
    ds, models = blended_models
    save_model(models["xgb"], tmp_path / "m", ds.feature_names)
    manifest = json.loads((tmp_path / "m" / MANIFEST).read_text())
    for part in manifest["xgb"]["horizons"].values():
        part.pop("early_boosters"), part.pop("refit_weight")
    (tmp_path / "m" / MANIFEST).write_text(json.dumps(manifest))
    loaded, X = load_model(tmp_path / "m"), ds.X[:100]
    for h in HORIZONS:
        refit = ordered({t: _members(models["xgb"], "xgb", X, h, t)[0]
                         for t in REGRESSION_TARGETS})
        np.testing.assert_allclose(loaded.predict(X, h)["avg"], refit["avg"], rtol=1e-5,
                                   atol=1e-4)


def test_refit_weight_one_serves_the_refit_alone_and_out_of_range_is_refused(blended_models):
    ds, models = blended_models
    whole = dataclasses.replace(models["xgb"].horizon_models[HORIZONS[0]], refit_weight=1.0)
    X = ds.X[:100]
    refit = ordered({t: _members(models["xgb"], "xgb", X, HORIZONS[0], t)[0]
                     for t in REGRESSION_TARGETS})
    np.testing.assert_allclose(whole.predict(X)["max"], refit["max"], rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="refit_weight"):
        AlarmConfig(refit_weight=1.5)
