"""The refit: the served regressors blend the refitted boosters (alarms.refit_weight) with the
early-stopped ones, as one booster per target."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from threadpoolctl import threadpool_limits

from amhs_assets.contract import REGRESSION_TARGETS
from amhs_assets.models.operating import AlarmConfig
from amhs_assets.models.splits import VAL
from amhs_assets.models.unified import fit_unified_model, with_horizon
from amhs_assets.models.xgb import (
    blend_boosters,
    fit_xgb_model,
    predict_booster,
    served_regressors,
)
from amhs_assets_tests.models.test_explain import HORIZONS, TINY, driven_dataset


def test_a_blended_booster_forecasts_the_weighted_sum_of_its_members(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.random((2000, 12)).astype(np.float32)
    y = 10 * X[:, 0] + rng.normal(0, 1, len(X))
    params = {"objective": "reg:absoluteerror", "max_depth": 4, "eta": 0.1, "subsample": 0.8,
              "nthread": 1}
    early = xgb.train(params, xgb.DMatrix(X[:1500], label=y[:1500]), 60)
    early.set_attr(best_iteration="39")  # early stopping kept 40 of its 60 trees
    refit = xgb.train({**params, "seed": 5}, xgb.DMatrix(X, label=y + 3.0), 45)
    blend = blend_boosters([(refit, 0.3), (early, 0.7)])
    wanted = 0.3 * predict_booster(refit, X) + 0.7 * predict_booster(early, X)
    assert np.abs(predict_booster(early, X) - predict_booster(refit, X)).mean() > 1.0
    np.testing.assert_allclose(predict_booster(blend, X), wanted, atol=1e-4)
    assert int(blend.best_iteration) + 1 == 45 + 40  # the early booster's unused trees left out
    contribs = blend.predict(xgb.DMatrix(X), pred_contribs=True)
    np.testing.assert_allclose(contribs.sum(axis=1), wanted, atol=1e-4)  # exact, additive
    blend.save_model(tmp_path / "blend.ubj")  # as the model storage writes it
    loaded = xgb.Booster(model_file=str(tmp_path / "blend.ubj"))
    loaded.set_attr(best_iteration=blend.best_iteration)
    np.testing.assert_allclose(predict_booster(loaded, X), wanted, atol=1e-4)


@pytest.fixture(scope="module")
def fitted():
    """Models of both kinds trained twice, serving the blend (0.3) and the refit alone (1)."""
    ds = driven_dataset()
    with threadpool_limits(1):
        return ds, {w: {"xgb": fit_xgb_model(ds, TINY, alarms=AlarmConfig(refit_weight=w)),
                        "unified": fit_unified_model(ds, TINY, alarms=AlarmConfig(refit_weight=w))}
                    for w in (0.3, 1.0)}


def _regressors(model, kind: str, h: int):
    part = model if kind == "unified" else model.horizon_models[h]
    return part.regressors, part.early


@pytest.mark.parametrize("kind", ["xgb", "unified"])
def test_the_served_regressors_blend_refit_and_early_stopped_by_refit_weight(fitted, kind):
    ds, models = fitted
    X = ds.X[ds.mask(VAL)][:300]
    for h in HORIZONS:
        rows = with_horizon(X, float(h)) if kind == "unified" else X
        served, early = _regressors(models[0.3][kind], kind, h)
        refit_alone, early_again = _regressors(models[1.0][kind], kind, h)
        for t in REGRESSION_TARGETS:
            stopped = predict_booster(early[t], rows)
            np.testing.assert_allclose(predict_booster(early_again[t], rows), stopped)  # same fit
            refit = predict_booster(refit_alone[t], rows)
            assert np.abs(refit - stopped).mean() > 0.01  # the refit learnt something else
            np.testing.assert_allclose(predict_booster(served[t], rows),
                                       0.3 * refit + 0.7 * stopped, atol=1e-3)
        forecast, alone = models[0.3][kind].predict(X, h), models[0.3][kind].predict(
            X, h, early=True)
        assert not np.allclose(forecast["avg"], alone["avg"])  # early=True: before the refit


def test_refit_weight_zero_serves_the_early_stopped_and_out_of_range_is_refused(fitted):
    ds, models = fitted
    hm = models[0.3]["xgb"].horizon_models[HORIZONS[0]]
    with pytest.raises(ValueError, match="refit_weight"):
        AlarmConfig(refit_weight=1.5)
    X = ds.X[:50]
    zero = served_regressors(hm.regressors, hm.early, 0.0)
    for t in REGRESSION_TARGETS:
        np.testing.assert_allclose(predict_booster(zero[t], X), predict_booster(hm.early[t], X))
