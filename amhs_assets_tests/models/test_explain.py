"""Explanations: contributions rolled up to raw columns, exact against each model kind's margin."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from threadpoolctl import threadpool_limits

from amhs_assets.contract import RAW_COLUMNS, STATES
from amhs_assets.dashboard.figures import explanation_figure
from amhs_assets.dashboard.page import status_board
from amhs_assets.features.spec import FEATURE_NAMES
from amhs_assets.models.dataset import ModelDataset
from amhs_assets.models.ensemble import EnsembleConfig, fit_ensemble_model
from amhs_assets.models.explain import (
    contributions,
    explain,
    global_importance,
    margins,
    rollup,
)
from amhs_assets.models.splits import TRAIN, VAL
from amhs_assets.models.unified import HORIZON_FEATURE, fit_unified_model
from amhs_assets.models.xgb import XgbConfig, fit_xgb_model, predict_booster

HORIZONS = (10, 25)
DRIVES_STATE = "comm_errors__sum_15"  # the feature the synthetic state follows
DRIVES_AVG = "vehicles_down__value"  # the feature the synthetic avg follows
PERSISTENCE = "transfer_time_avg_s__last"


@dataclasses.dataclass(frozen=True)
class OneThread(XgbConfig):
    """XgbConfig on one thread: on a shared 2-core box two threads each spin-wait (as in
    defs/test_registry_assets.py; 10-50x slower fits here when another process is busy)."""

    def params(self) -> dict:
        return super().params() | {"nthread": 1}


TINY = OneThread(num_boost_round=12, early_stopping_rounds=12, max_depth=3, max_bin=32,
                 learning_rate=0.3, train_stride=1, device="cpu", seed=3)
TINY_ENSEMBLE = EnsembleConfig(top_features=16, hgb_max_iter=10, hgb_max_rows=1000,
                               mlp_hidden=(8,), mlp_epochs=2, mlp_max_rows=1000, seed=3)
WITHIN = 1e-3


def driven_dataset(n: int = 600, seed: int = 7) -> ModelDataset:
    """Random features (a few missing) where comm_errors sets the state and vehicles_down the avg."""
    rng = np.random.default_rng(seed)
    names = FEATURE_NAMES
    X = rng.normal(size=(n, len(names))).astype(np.float32)
    X[rng.random(X.shape) < 0.03] = np.nan
    col = {name: i for i, name in enumerate(names)}
    comm, down = np.nan_to_num(X[:, col[DRIVES_STATE]]), np.nan_to_num(X[:, col[DRIVES_AVG]])
    persistence = 200.0 + 30.0 * rng.random(n)
    X[:, col[PERSISTENCE]] = persistence
    targets = {}
    for h in HORIZONS:
        avg = persistence + 80.0 * down + rng.normal(0, 5, n)
        targets |= {f"avg_{h}": avg, f"min_{h}": avg - 20, f"max_{h}": avg + 20,
                    f"state_{h}": np.select([comm > 0.8, comm > 0.0], [2, 1], 0)}
    split = np.where(np.arange(n) < int(n * 0.7), TRAIN, VAL)
    return ModelDataset(
        feature_names=names, X=X, line_id=np.full(n, "A"),
        timestamp=pd.date_range("2026-03-01", periods=n, freq="min", tz="UTC"), split=split,
        targets=pd.DataFrame(targets), persistence=persistence,
        alarms_now=np.zeros(n), persistence_index=col[PERSISTENCE],
        alarms_index=col["alarms_major__value"], horizons=HORIZONS, boundaries=pd.DataFrame())


@pytest.fixture(scope="module")
def trained():
    """The dataset and one trained model of each kind (a couple of seconds in all)."""
    ds = driven_dataset()
    with threadpool_limits(1):  # scikit-learn's OpenMP threads, as OneThread
        per_horizon = fit_xgb_model(ds, TINY)
        return ds, {"xgb": per_horizon, "unified": fit_unified_model(ds, TINY),
                    "ensemble": fit_ensemble_model(ds, per_horizon.horizon_models, TINY_ENSEMBLE)}


def _boosters(model, kind: str, h: int) -> tuple[xgb.Booster, xgb.Booster]:
    """The classifier and avg regressor an explanation of the kind at horizon h reads."""
    if kind == "unified":
        return model.classifier, model.regressors["avg"]
    hm = model.horizon_models[h] if kind == "xgb" else model.xgb[h]
    return hm.classifier, hm.regressors["avg"]


def _rows(model, kind: str, X: np.ndarray, h: int) -> np.ndarray:
    return np.hstack([X, np.full((len(X), 1), h, X.dtype)]) if kind == "unified" else X


def test_the_rollup_maps_every_feature_onto_the_raw_columns_it_reads():
    columns, matrix = rollup(FEATURE_NAMES)
    assert columns == tuple(c for c in RAW_COLUMNS if c != "line_id")  # no feature reads line_id
    assert matrix.shape == (len(FEATURE_NAMES), 31)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)  # nothing lost, nothing made up
    row = matrix[FEATURE_NAMES.index("queue_per_available_vehicle__value")]
    assert {columns[j]: round(v, 3) for j, v in enumerate(row) if v} == {
        "jobs_queued": 0.333, "vehicles_total": 0.333, "vehicles_down": 0.333}
    assert columns[int(matrix[FEATURE_NAMES.index("cal__shift_index")].argmax())] == "timestamp"
    with_h, matrix_h = rollup((*FEATURE_NAMES, HORIZON_FEATURE))
    assert with_h == (*columns, "horizon") and matrix_h[-1, -1] == 1.0
    with pytest.raises(ValueError, match="not in the feature catalog"):
        rollup(("no_such__feature",))


@pytest.mark.parametrize("kind", ["xgb", "unified", "ensemble"])
def test_contributions_sum_with_the_bias_to_the_margin_the_forecast_uses(trained, kind):
    ds, models = trained
    model, X = models[kind], ds.X[ds.mask(VAL)][:200]
    for h in HORIZONS:
        parts = contributions(model, X, h)
        classifier, avg = _boosters(model, kind, h)
        Xm = xgb.DMatrix(_rows(model, kind, X, h), missing=np.nan)
        trees = (0, classifier.best_iteration + 1)  # as the forecast (predict_booster)
        critical = classifier.predict(Xm, output_margin=True, iteration_range=trees)
        own = {"CRITICAL": critical[:, STATES.index("CRITICAL")],
               "avg": predict_booster(avg, _rows(model, kind, X, h))}
        for name, part in parts.items():
            np.testing.assert_allclose(part.values.sum(axis=1) + part.bias, own[name], atol=WITHIN)
            np.testing.assert_allclose(part.margin, own[name], atol=WITHIN)
            np.testing.assert_allclose(margins(model, X, h)[name], own[name], atol=1e-6)
        forecast = model.xgb[h].predict(X) if kind == "ensemble" else model.predict(X, h)
        np.testing.assert_allclose(np.maximum(parts["avg"].baseline + parts["avg"].margin, 0),
                                   forecast["avg"], rtol=1e-5)


def test_a_model_stopped_early_is_explained_over_the_trees_it_predicts_with(trained):
    ds, models = trained
    model, X = copy.deepcopy(models["xgb"]), ds.X[ds.mask(VAL)][:50]
    hm = model.horizon_models[10]
    for booster in (hm.classifier, hm.regressors["avg"]):
        assert booster.num_boosted_rounds() > 3
        booster.set_attr(best_iteration="2")  # three of its trees count
    parts = contributions(model, X, 10)
    full = hm.regressors["avg"].inplace_predict(X)
    np.testing.assert_allclose(parts["avg"].margin, predict_booster(hm.regressors["avg"], X),
                               atol=WITHIN)
    assert np.abs(parts["avg"].margin - full).max() > 1.0  # the later trees would change it
    three = hm.classifier.predict(xgb.DMatrix(X), output_margin=True, iteration_range=(0, 3))
    np.testing.assert_allclose(parts["CRITICAL"].margin, three[:, 2], atol=WITHIN)


@pytest.mark.parametrize("kind", ["xgb", "unified", "ensemble"])
def test_the_answer_lists_the_largest_raw_columns_first_and_still_sums_to_the_margin(trained, kind):
    ds, models = trained
    X = ds.X[ds.mask(VAL)][:20]
    for h in HORIZONS:
        answer = explain(models[kind], X, h, top=3)
        assert len(answer) == len(X)
        json.dumps(answer, allow_nan=False)
        for row in answer:
            assert row["model"] == {"ensemble": "ensemble: xgb member"}.get(kind, kind)
            assert "baseline" in row["avg"] and "baseline" not in row["CRITICAL"]
            for output in ("CRITICAL", "avg"):
                entry = row[output]
                sizes = [abs(t["contribution"]) for t in entry["top"]]
                assert 0 < len(sizes) <= 3 and sizes == sorted(sizes, reverse=True)
                assert all(t["column"] in (*RAW_COLUMNS, "horizon") for t in entry["top"])
                total = sum(t["contribution"] for t in entry["top"]) + entry["other"] + entry["bias"]
                assert abs(total - entry["margin"]) <= 1e-4  # exact but for the rounding


def test_the_column_that_drives_the_forecast_comes_out_on_top(trained):
    ds, models = trained
    X = ds.X[ds.mask(VAL)]
    comm = np.nan_to_num(X[:, FEATURE_NAMES.index(DRIVES_STATE)])
    down = np.nan_to_num(X[:, FEATURE_NAMES.index(DRIVES_AVG)])
    hot = X[comm > 1.5][:5]
    for row in explain(models["xgb"], hot, 10):
        first = row["CRITICAL"]["top"][0]
        assert first["column"] == "comm_errors" and first["contribution"] > 0
        assert first["text"] == "comm_errors pushes CRITICAL up"
    for row in explain(models["unified"], X[np.abs(down) > 1.5][:5], 25):
        assert row["avg"]["top"][0]["column"] == "vehicles_down"
    summary = global_importance(models["xgb"], X, 10)
    assert list(summary.columns) == ["horizon", "column", "CRITICAL", "avg"]
    assert summary["column"].iloc[0] == "comm_errors"
    assert summary.set_index("column")["avg"].idxmax() == "vehicles_down"
    assert len(global_importance(models["xgb"], X, 10, max_rows=40)) == len(summary)


def test_the_global_summary_draws_one_bar_per_horizon_and_output(trained):
    ds, models = trained
    X = ds.X[ds.mask(VAL)]
    summary = pd.concat([global_importance(models["unified"], X, h) for h in HORIZONS])
    fig = explanation_figure(summary, top=6)
    assert len(fig.data) == 2 * len(HORIZONS)
    assert all(len(trace.y) == 6 for trace in fig.data)
    assert "comm_errors" in fig.data[0].y
    assert explanation_figure(summary.iloc[:0]) is None


def test_the_dashboard_reads_the_answer_explain_gives(trained):
    ds, models = trained
    X = ds.X[ds.mask(VAL)]
    hot = X[np.nan_to_num(X[:, FEATURE_NAMES.index(DRIVES_STATE)]) > 1.5][:1]
    as_of = "2026-03-01T01:15:00Z"
    answer = {"line_id": "A", "as_of": as_of,
              "horizons": {"10": {"explain": explain(models["xgb"], hot, 10)[0]}}}
    latest = [{"line_id": "A", "as_of": as_of, "model_version": "1", "source": "api",
               "horizons": {"10": {"min": 1.0, "max": 2.0, "avg": 1.5, "state": "CRITICAL"}}}]
    assert "why: comm_errors ↑ · " in status_board(latest, "UTC", [answer])


@pytest.mark.parametrize("kind", ["xgb", "unified", "ensemble"])
def test_a_saved_and_loaded_model_explains_as_the_trained_one(trained, kind, tmp_path):
    """The registry serves a loaded model: it must read the same columns as the trained one
    (a loaded unified model once named 222 features for its 223 columns and failed)."""
    from amhs_assets.models.storage import load_model, save_model

    ds, models = trained
    save_model(models[kind], tmp_path / "model", ds.feature_names)
    loaded = load_model(tmp_path / "model")
    X = ds.X[:20]
    for h in HORIZONS:
        assert explain(loaded, X, h) == explain(models[kind], X, h)
