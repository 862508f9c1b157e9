"""The dask training backend: xgboost.dask on a LocalCluster gives the same kind of models as
the local backend (plain boosters, early-stopped), of the same quality."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import xgboost as xgb

from amhs_assets.models.dataset import dataset_from_raw
from amhs_assets.models.xgb import XgbConfig, fit_xgb_model
from amhs_assets_tests.support import HORIZONS, THRESHOLDS, simulated_rows


def test_an_unknown_training_backend_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="training_backend='spark'.*local, dask"):
        XgbConfig(training_backend="spark")


def _test_mae(model, ds, h: int) -> float:
    test = ds.mask("test")
    y = ds.target("avg", h)[test]
    known = ~np.isnan(y)
    return float(np.abs(model.predict(ds.X[test], h)["avg"][known] - y[known]).mean())


@pytest.mark.slow
def test_dask_trains_the_same_models_as_local_on_a_local_cluster():
    ds = dataset_from_raw(simulated_rows(days=3), HORIZONS, THRESHOLDS)[1]
    config = XgbConfig(num_boost_round=40, max_bin=32, device="cpu", seed=5)
    local = fit_xgb_model(ds, config, horizons=(10,))
    dask = fit_xgb_model(ds, dataclasses.replace(config, training_backend="dask"),
                         horizons=(10,))
    ours, theirs = dask.horizon_models[10], local.horizon_models[10]
    assert set(ours.regressors) == set(theirs.regressors)
    assert isinstance(ours.classifier, xgb.Booster)
    for name, booster in ours.regressors.items():
        assert isinstance(booster, xgb.Booster)
        assert booster.num_features() == ds.X.shape[1]
        stopped = ours.early[name]  # served: the refit blended with the early-stopped one
        assert ours.best_iterations[name] == stopped.best_iteration  # early stopping kept
        assert booster.best_iteration + 1 == 2 * (stopped.best_iteration + 1)  # refit: as many
    assert ours.best_iterations["avg"] > 5  # it learnt: validation rows and labels line up
    # one worker: the same histograms and the same trees as the local backend, up to the
    # order in which the rows arrive
    assert _test_mae(dask, ds, 10) == pytest.approx(_test_mae(local, ds, 10), rel=0.1)
    proba = dask.predict(ds.X[:50], 10)["proba"]
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
