"""Splits, metrics, models and evaluation on a small simulated data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from amhs_assets.contract import HORIZONS, TARGET_COLUMN
from amhs_assets.documents import EvaluationDocument
from amhs_assets.evaluation.evaluate import (
    evaluation_document,
    evaluation_records,
    predictions_frame,
    summary_table,
)
from amhs_assets.evaluation.metrics import classification_metrics, regression_metrics
from amhs_assets.features.compute import build_features, feature_rows_usable
from amhs_assets.features.targets import build_targets
from amhs_assets.models.dataset import build_dataset, dataset_from_raw, training_rows
from amhs_assets.models.ensemble import EnsembleConfig, fit_ensemble_model
from amhs_assets.models.persistence import PersistenceModel
from amhs_assets.models.splits import TRAIN, VAL, SplitConfig, assign_splits
from amhs_assets.models.unified import fit_unified_model
from amhs_assets.models.xgb import (
    Matrices,
    RowBatches,
    XgbConfig,
    fit_booster,
    fit_horizon_models,
    fit_xgb_model,
)
from amhs_assets.simulate.lines import simulate_lines
from amhs_assets_tests.support import simulated_rows

THRESHOLDS = {"warning_s": 300.0, "critical_s": 600.0, "target_column": TARGET_COLUMN}
FAST = XgbConfig(num_boost_round=40, early_stopping_rounds=10, max_bin=32, seed=3)
FAST_ENSEMBLE = EnsembleConfig(top_features=32, hgb_max_iter=30, hgb_max_rows=4000,
                               mlp_hidden=(16,), mlp_epochs=3, mlp_max_rows=4000, seed=3)


@pytest.fixture(scope="module")
def dataset():
    raw = pd.concat(simulate_lines(["A", "B"], pd.Timestamp("2026-02-02", tz="UTC"), 5, 21).values())
    return dataset_from_raw(raw, HORIZONS, THRESHOLDS)[1]


def test_splits_are_chronological_per_line_with_purge_gaps():
    stamps = pd.Series(pd.date_range("2026-01-01", periods=10_000, freq="min", tz="UTC"))
    lines = pd.Series(["A"] * 6000 + ["B"] * 4000)
    ts = pd.concat([stamps[:6000], stamps[:4000]], ignore_index=True)
    split, bounds = assign_splits(lines, ts, SplitConfig(0.2, 0.2, 25))
    for line in ("A", "B"):
        m = (lines == line).to_numpy()
        t = ts[m].to_numpy()
        s = split[m]
        train, val, test = t[s == "train"], t[s == "val"], t[s == "test"]
        assert train.max() + np.timedelta64(25, "m") <= val.min()
        assert val.max() + np.timedelta64(25, "m") <= test.min()
        assert not (set(train) & set(val) or set(val) & set(test) or set(train) & set(test))
        span = t.max() - t.min()
        assert abs((t.max() - test.min()) - span * 0.2) <= np.timedelta64(1, "m")
    assert set(bounds.columns) >= {"line_id", "val_start", "test_start", "train_end", "val_end"}


def test_no_target_window_straddles_two_sets(dataset):
    h = max(HORIZONS)
    for line in np.unique(dataset.line_id):
        m = dataset.line_id == line
        t, s = dataset.timestamp[m], dataset.split[m]
        # the last training minute's target window ends before validation starts
        assert t[s == "train"].max() + pd.Timedelta(minutes=h) < t[s == "val"].min()
        assert t[s == "val"].max() + pd.Timedelta(minutes=h) < t[s == "test"].min()


@pytest.mark.parametrize("y_true,y_pred", [
    ([1.0, 2.0, 3.0, 4.0], [1.5, 1.5, 3.5, 5.0]),
    ([10.0, -3.0, 7.0], [9.0, -1.0, 7.0]),
])
def test_regression_metrics_match_scikit_learn(y_true, y_pred):
    m = regression_metrics(np.array(y_true), np.array(y_pred))
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert m["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert m["r2"] == pytest.approx(skm.r2_score(y_true, y_pred))


def test_regression_metrics_skip_unknown_pairs():
    m = regression_metrics(np.array([1.0, np.nan, 3.0]), np.array([2.0, 5.0, np.nan]))
    assert m["n"] == 1 and m["mae"] == 1.0


@pytest.mark.parametrize("y_true,y_pred", [
    ([0, 0, 1, 2, 2, 1, 0], [0, 1, 1, 2, 0, 1, 0]),
    ([0, 0, 0, 1], [0, 0, 1, 1]),  # CRITICAL absent from both
    ([0, 2, 2, 2], [0, 0, 0, 0]),  # CRITICAL never predicted
])
def test_classification_metrics_match_scikit_learn(y_true, y_pred):
    m = classification_metrics(np.array(y_true), np.array(y_pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    labels = sorted(set(y_true))
    recall = skm.recall_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    for label, r in zip(labels, recall):
        assert m["recall"][("NORMAL", "WARNING", "CRITICAL")[label]] == pytest.approx(r)
    assert np.array_equal(m["confusion_matrix"], skm.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]))


def test_every_model_trains_predicts_and_evaluates_in_the_spec_shape(dataset):
    xgb = fit_xgb_model(dataset, FAST)
    unified = fit_unified_model(dataset, FAST)
    ensemble = fit_ensemble_model(dataset, xgb.horizon_models, FAST_ENSEMBLE)
    models = {"persistence": PersistenceModel.from_dataset(dataset), "xgb": xgb,
              "unified": unified, "ensemble": ensemble}
    preds = predictions_frame(models, dataset)
    records = evaluation_records(preds)
    assert len(records) == len(models) * len(HORIZONS) * 4
    doc = EvaluationDocument.model_validate(
        evaluation_document(dataset, records, {"name": "amhs-predictor", "version": None}))
    assert doc.test_window.rows == int(dataset.mask("test").sum())
    assert (preds["pred_min"] <= preds["pred_avg"] + 1e-6).all()
    assert (preds["pred_avg"] <= preds["pred_max"] + 1e-6).all()
    probs = preds[["proba_NORMAL", "proba_WARNING", "proba_CRITICAL"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    table = summary_table(records)
    assert {"xgb", "unified", "ensemble", "persistence"} <= set(table["model"])
    for (h, t), w in ensemble.weights.items():
        assert w.sum() == pytest.approx(1.0) and (w >= 0).all()


def test_unified_model_serves_a_horizon_it_was_not_trained_on(dataset):
    unified = fit_unified_model(dataset, XgbConfig(num_boost_round=10, max_bin=32), row_share=0.2)
    X = dataset.X[dataset.mask("test")][:50]
    pred = unified.predict(X, 20)
    assert np.isfinite(pred["avg"]).all() and pred["proba"].shape == (50, 3)


def test_same_seed_same_metrics(dataset):
    config = XgbConfig(num_boost_round=15, max_bin=32, seed=3)
    first = fit_horizon_models(dataset, 10, config)
    second = fit_horizon_models(dataset, 10, config)
    X = dataset.X[dataset.mask("test")]
    a, b = first.predict(X), second.predict(X)
    for key in ("min", "max", "avg", "proba"):
        assert np.array_equal(a[key], b[key])


def test_models_on_shared_matrices_equal_models_fitted_alone(dataset):
    config = XgbConfig(num_boost_round=12, max_bin=32, seed=5)
    shared = fit_xgb_model(dataset, config)  # one quantised matrix, relabelled 12 times
    X = dataset.X[dataset.mask("test")]
    for h in (10, 25):
        alone, together = fit_horizon_models(dataset, h, config).predict(X), shared.predict(X, h)
        for key in ("min", "max", "avg", "proba"):
            assert np.array_equal(alone[key], together[key])


def test_training_rows_take_every_nth_training_minute_and_nothing_else(dataset):
    rows = training_rows(dataset, 2)
    train = np.flatnonzero(dataset.mask("train"))
    assert np.array_equal(rows, train[::2])
    assert np.array_equal(training_rows(dataset, 1), train)


def test_persistence_carries_the_current_value_forward(dataset):
    pers = PersistenceModel.from_dataset(dataset)
    X = dataset.X[:100]
    pred = pers.predict(X, 25)
    known = ~np.isnan(dataset.persistence[:100])
    assert np.allclose(pred["avg"][known], dataset.persistence[:100][known], rtol=1e-6)


def test_a_candidate_too_slow_to_serve_is_not_chosen_however_good(dataset):
    from amhs_assets.evaluation.evaluate import best_on_validation

    xgb = fit_xgb_model(dataset, FAST)
    pers = PersistenceModel.from_dataset(dataset)
    candidates = {"xgb": xgb, "persistence": pers}
    best, scores = best_on_validation(candidates, dataset)
    assert best == "xgb" and scores["xgb"] < scores["persistence"]
    slow = {"xgb": 500.0, "persistence": 1.0}
    assert best_on_validation(candidates, dataset, slow, budget_ms=20.0)[0] == "persistence"
    assert best_on_validation(candidates, dataset, {"xgb": 500.0, "persistence": 900.0},
                              budget_ms=20.0)[0] == "xgb"  # none fast enough: the best


def test_xgboost_learns_from_row_batches_as_from_one_matrix():
    """The training rows reach XGBoost batch by batch (no concatenated copy); the quantised
    matrix and so the model are the same however the rows are cut."""
    _, ds = dataset_from_raw(simulated_rows(("A",), days=2))
    config = XgbConfig(num_boost_round=15, max_depth=3, device="cpu", seed=1)
    tr, va = np.flatnonzero(ds.mask(TRAIN)), np.flatnonzero(ds.mask(VAL))
    y = ds.target("avg", 10) - ds.persistence
    predictions = []
    for batch_rows in (len(tr), 256):
        batches = RowBatches.of_rows(ds.X, tr, batch_rows)
        assert len(batches.batches) == -(-len(tr) // batch_rows)
        matrices = Matrices.build(batches, RowBatches.of_rows(ds.X, va, batch_rows), config)
        assert matrices.train.num_row() == len(tr) and matrices.val.num_row() == len(va)
        booster = fit_booster(config, "reg:absoluteerror", matrices, y[tr], y[va])
        predictions.append(booster.inplace_predict(ds.X[va]))
    np.testing.assert_allclose(predictions[0], predictions[1], rtol=1e-5, atol=1e-3)


def test_a_training_window_keeps_the_newest_days_and_splits_them():
    raw = simulated_rows(("A", "B"), days=4)
    cleaned, whole = dataset_from_raw(raw)
    features, targets = build_features(cleaned), build_targets(cleaned)
    usable = feature_rows_usable(cleaned)
    config = SplitConfig(gap_min=25, train_window_days=2)
    ds = build_dataset(features, targets, usable, HORIZONS, config, whole.thresholds)
    newest = cleaned["timestamp"].max()
    assert ds.timestamp.min() > newest - pd.Timedelta(days=2)
    assert len(ds.X) < 0.55 * len(whole.X)  # about half the rows of 4 days
    starts = pd.to_datetime(ds.boundaries["start"], utc=True)
    assert (starts > newest - pd.Timedelta(days=2)).all()  # what the version's tags record
    assert {"train", "val", "test"} <= set(ds.split)
    everything = build_dataset(features, targets, usable, HORIZONS, SplitConfig(gap_min=25),
                               whole.thresholds)
    assert len(everything.X) == len(whole.X)  # 0 = all history
